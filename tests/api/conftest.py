from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.server import GatewayProcess, start_gateway


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The real gateway with no config: the embedded chat and embedding models."""
    home: Path = tmp_path_factory.mktemp("gw") / "home"
    gw = start_gateway(home)
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.api_base, api_key=gateway.master_key, max_retries=0)


@pytest.fixture(scope="session")
def aclient_factory(gateway: GatewayProcess) -> object:
    def make() -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=gateway.api_base, api_key=gateway.master_key, max_retries=0
        )

    return make

"""Access control: who is calling (Principal), API keys, OIDC tokens, rate limits, budgets."""

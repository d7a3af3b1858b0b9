"""Routing: complexity scoring, policy, load balancing, health."""

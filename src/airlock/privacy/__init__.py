"""Privacy: sensitive-data detection, pseudonymisation, the audit trail."""

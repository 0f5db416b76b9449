"""Decision logic of vhod: accounts, tokens, passwords, identifiers.

No Tornado web layer in here; delivery.py, sms_gateways.py and captcha.py call other services
with Tornado's HTTP client (tests/test_docs_site.py holds the list to what is true)."""

"""Decision logic of vhod: accounts, tokens, passwords, identifiers. No Tornado in here."""

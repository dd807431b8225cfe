"""PAdES signing and verification the Decree 30/2020 way; usable without the gateway service."""

"""The embedded local stack: moto in-process, the Chalice app served on 127.0.0.1."""

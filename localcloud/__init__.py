"""The local cloud: the deployed architecture on 127.0.0.1, with moto's server."""

"""TLS on every hop: the lab's CA and certificates, which certificate each service serves, what
`pglab certs` shows, and rotation without a restart."""

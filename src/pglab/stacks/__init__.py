"""HA stack clients: what pglab asks of a running cluster (members, health, switchover ...).

Only Patroni is implemented (:mod:`pglab.stacks.patroni`); the topology already accepts
pg_auto_failover, and `pglab up` refuses it with a clear message until its client and role exist.
"""

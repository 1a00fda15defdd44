"""HA stack clients by name: the topology's ``stack:`` picks one."""

"""Opt-in Mitogen for Ansible (``PGLAB_MITOGEN=1``): strategy plugins named ``linear`` and ``free``
that are Mitogen's, so that site.yml's plays (``strategy: free`` among them) run every task
through one Python interpreter kept per node instead of a Python start per task.

:mod:`pglab.ansible` puts this directory on ``ANSIBLE_STRATEGY_PLUGINS`` only when asked: the
names shadow Ansible's own strategies. The README says why it stays off by default.
"""

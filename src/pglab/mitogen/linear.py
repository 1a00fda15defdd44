"""Ansible's ``linear`` strategy, run by Mitogen (see :mod:`pglab.mitogen`)."""

import ansible_mitogen.loaders
import ansible_mitogen.strategy

# The fully qualified name: the short one would find this very module again.
Base = ansible_mitogen.loaders.strategy_loader.get("ansible.builtin.linear", class_only=True)


class StrategyModule(ansible_mitogen.strategy.StrategyMixin, Base):  # type: ignore[misc,valid-type]
    pass

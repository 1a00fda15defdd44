"""A two-site lab: each site a cluster of its own, one the primary, the other its standby cluster.

- :mod:`~pglab.sites.view`: each site's role, leader and members, and the lag between the sites,
  as `pglab status` shows them.
"""

from pglab.sites.view import SiteLag, SiteRole, SiteView, lag_between_sites, site_role

__all__ = ["SiteLag", "SiteRole", "SiteView", "lag_between_sites", "site_role"]

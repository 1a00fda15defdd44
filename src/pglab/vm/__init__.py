"""The VM host: an offline box, a private network namespace with its own libvirtd, and what a lab
leaves in libvirt."""

"""Virtual machines: the port the kvm runtime's rules see, libvirt's adapter and the files.

It must never import another runtime subpackage but the kits.
"""

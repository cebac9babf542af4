"""Virtual machines: the port the kvm runtime's rules see, libvirt's adapter and the files;
and the VM pool's storage pool, volumes and domains (:mod:`.fleet_vms`, for
``fleet.provisioning``).

It must never import another runtime subpackage but the kits.
"""

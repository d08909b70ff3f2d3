"""How one image is written safely: turns between writers (leases, locks), whole-document
changes with revisions (rewrite), new bytes staged then moved into place (replacement), and
what a crash left behind, found and repaired (repair, inventory: fsck)."""

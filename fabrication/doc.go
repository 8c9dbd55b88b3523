// Package fabrication is the making side of fabcommons: labs and their members,
// machines and how agents enrol them, orders and the jobs they become, matching jobs
// to machines, the order of service, leases that never print a part twice, and the
// maintenance that keeps it all honest. It imports no web framework and no database
// driver: it declares the Store it needs and storage/ implements it.
package fabrication

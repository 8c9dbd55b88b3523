// Package fabrication is the making side of fabcommons: labs and their members,
// machines and how agents enrol them, orders and the jobs they become, matching jobs
// to machines, the order of service, leases that never print a part twice, and the
// maintenance that keeps it all honest. It imports no web framework and no database
// driver: it declares the Store it needs and storage/ implements it.
//
// By aggregate: Labs (labs.go: labs, members, join tokens; machines.go: machines,
// their enrolment, tokens and retirement),
// Orders (orders.go: placing orders; approve, reject, cancel, resolve, harvest) and
// Scheduler (scheduler.go: polls, claims, reports, leases, each lab's queue), each
// holding only the part of the store it uses. A job changes only through Transition
// (lifecycle.go), a pure function of the job, the event, the lab's rules and the time.
package fabrication

// Package catalog is the design commons: designs with immutable, numbered versions of
// content-addressed files, mesh reports, bills of materials, licenses, forks and
// lineage, and search. It imports no web framework and no database driver: it declares
// the Store it needs and storage/ implements it.
package catalog

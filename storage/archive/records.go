// Package archive is the hub's portable archive: everything a store holds, as one record
// per line of JSON, and every blob by its hash, in a tar stream. `fabhub export` writes
// it from any backend pair and `fabhub import` loads it into any other, which is how a
// lab moves from the embedded store to MongoDB and S3, and back.
//
// A record is a domain value with the fields the API never shows (password and token
// hashes, owners' ids, revisions) written out too: the archive is as secret as the
// database, unless it was made public, which leaves those out.
package archive

import (
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/federation"
)

// The kinds of record, in the order an archive holds them and a store loads them: each
// after the kinds it refers to.
const (
	KindUser      = "user"
	KindToken     = "token"
	KindDesign    = "design"
	KindVersion   = "version"
	KindFlag      = "flag"
	KindLab       = "lab"
	KindMember    = "member"
	KindJoinToken = "join_token"
	KindMachine   = "machine"
	KindOrder     = "order"
	KindJob       = "job"
	KindUsage     = "usage"
	KindLedger    = "ledger"
	KindWebhook   = "webhook"
	KindDelivery  = "webhook_delivery"
	KindFedKey    = "federation_key"
	KindFollow    = "federation_follow"
	KindFollower  = "federation_follower"
	KindBlock     = "federation_block"
	KindMake      = "remote_make"
)

// Kinds lists every kind in archive order.
var Kinds = []string{KindUser, KindToken, KindDesign, KindVersion, KindFlag, KindLab, KindMember, KindJoinToken,
	KindMachine, KindOrder, KindJob, KindUsage, KindLedger, KindWebhook, KindDelivery,
	KindFedKey, KindFollow, KindFollower, KindBlock, KindMake}

// Sessions, enrollment codes, quota counters and leases are not archived: they last
// minutes to days, and a moved hub starts them afresh (people sign in again).

// User is an account with its password hash.
type User struct {
	account.User
	PasswordHash string `json:"password_hash"`
}

func FromUser(u account.User) User { return User{User: u, PasswordHash: u.PasswordHash} }

func (r User) Value() account.User {
	u := r.User
	u.PasswordHash = r.PasswordHash
	return u
}

// Token is a personal API token with its owner and the hash of its secret.
type Token struct {
	account.Token
	UserID string `json:"user_id"`
	Hash   string `json:"hash"`
}

func FromToken(t account.Token) Token { return Token{Token: t, UserID: t.UserID, Hash: t.Hash} }

func (r Token) Value() account.Token {
	t := r.Token
	t.UserID, t.Hash = r.UserID, r.Hash
	return t
}

// Design is a design with its owner's id.
type Design struct {
	catalog.Design
	OwnerID string `json:"owner_id"`
}

func FromDesign(d catalog.Design) Design { return Design{Design: d, OwnerID: d.OwnerID} }

func (r Design) Value() catalog.Design {
	d := r.Design
	d.OwnerID = r.OwnerID
	return d
}

// Version is a design version as it is (every field is public).
type Version = catalog.Version

// Flag is a report on a design with the reporter's id.
type Flag struct {
	catalog.Flag
	UserID string `json:"user_id"`
}

func FromFlag(f catalog.Flag) Flag { return Flag{Flag: f, UserID: f.UserID} }

func (r Flag) Value() catalog.Flag {
	f := r.Flag
	f.UserID = r.UserID
	return f
}

// Lab is a lab as it is.
type Lab = fabrication.Lab

// Member is a lab membership with its lab and person.
type Member struct {
	fabrication.Member
	LabID  string `json:"lab_id"`
	UserID string `json:"user_id"`
}

func FromMember(m fabrication.Member) Member {
	return Member{Member: m, LabID: m.LabID, UserID: m.UserID}
}

func (r Member) Value() fabrication.Member {
	m := r.Member
	m.LabID, m.UserID = r.LabID, r.UserID
	return m
}

// JoinToken is a lab's join token with its lab and the hash of its secret.
type JoinToken struct {
	fabrication.JoinToken
	LabID string `json:"lab_id"`
	Hash  string `json:"hash"`
}

func FromJoinToken(t fabrication.JoinToken) JoinToken {
	return JoinToken{JoinToken: t, LabID: t.LabID, Hash: t.Hash}
}

func (r JoinToken) Value() fabrication.JoinToken {
	t := r.JoinToken
	t.LabID, t.Hash = r.LabID, r.Hash
	return t
}

// Machine is a machine with the hash of its agent's token and its revision.
type Machine struct {
	fabrication.Machine
	TokenHash string `json:"token_hash"`
	Rev       int    `json:"rev"`
}

func FromMachine(m fabrication.Machine) Machine {
	return Machine{Machine: m, TokenHash: m.TokenHash, Rev: m.Rev}
}

func (r Machine) Value() fabrication.Machine {
	m := r.Machine
	m.TokenHash, m.Rev = r.TokenHash, r.Rev
	return m
}

// Order is an order with its requester's id.
type Order struct {
	fabrication.Order
	RequesterID string `json:"requester_id"`
}

func FromOrder(o fabrication.Order) Order { return Order{Order: o, RequesterID: o.RequesterID} }

func (r Order) Value() fabrication.Order {
	o := r.Order
	o.RequesterID = r.RequesterID
	return o
}

// Job is a job with its log, its requester's id, its lease and its revision.
type Job struct {
	fabrication.Job
	RequesterID string `json:"requester_id"`
	Holding     bool   `json:"holding"`
	LeaseHash   string `json:"lease_hash"`
	Rev         int    `json:"rev"`
}

func FromJob(j fabrication.Job) Job {
	if j.Events == nil {
		j.Events = []fabrication.Event{}
	}
	return Job{Job: j, RequesterID: j.RequesterID, Holding: j.Holding, LeaseHash: j.LeaseHash, Rev: j.Rev}
}

func (r Job) Value() fabrication.Job {
	j := r.Job
	j.RequesterID, j.Holding, j.LeaseHash, j.Rev = r.RequesterID, r.Holding, r.LeaseHash, r.Rev
	return j
}

// Usage is a requester's decaying machine time in a lab, for fair share.
type Usage struct {
	LabID       string    `json:"lab_id"`
	RequesterID string    `json:"requester_id"`
	Seconds     float64   `json:"seconds"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func FromUsage(u fabrication.Usage) Usage { return Usage(u) }

func (r Usage) Value() fabrication.Usage { return fabrication.Usage(r) }

// Ledger is a ledger entry with its closing key.
type Ledger struct {
	fabrication.LedgerEntry
	Closes string `json:"closes"`
}

func FromLedger(e fabrication.LedgerEntry) Ledger { return Ledger{LedgerEntry: e, Closes: e.Closes} }

func (r Ledger) Value() fabrication.LedgerEntry {
	e := r.LedgerEntry
	e.Closes = r.Closes
	return e
}

// Webhook is a hook with its owner and the secret the hub signs its deliveries with.
type Webhook struct {
	webhook.Hook
	OwnerID string `json:"owner_id"`
	Secret  string `json:"secret"`
}

func FromWebhook(h webhook.Hook) Webhook {
	return Webhook{Hook: h, OwnerID: h.OwnerID, Secret: h.Secret}
}

func (r Webhook) Value() webhook.Hook {
	h := r.Hook
	h.OwnerID, h.Secret = r.OwnerID, r.Secret
	return h
}

// Delivery is a webhook delivery as it is, with its outcome so far.
type Delivery = webhook.Delivery

// FedKey is a local actor's key pair with its private key: the hub signs as that actor
// with it. A public archive leaves every key out.
type FedKey struct {
	federation.Key
	PrivatePEM string `json:"private_pem"`
}

func FromFedKey(k federation.Key) FedKey { return FedKey{Key: k, PrivatePEM: k.PrivatePEM} }

func (r FedKey) Value() federation.Key {
	k := r.Key
	k.PrivatePEM = r.PrivatePEM
	return k
}

// Follow, Follower, Block and RemoteMake are federation's records as they are.
type (
	Follow     = federation.Follow
	Follower   = federation.Follower
	Block      = federation.Block
	RemoteMake = federation.RemoteMake
)

package fabrication

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/fabcommons/fabcommons/storage"
)

// The ledger of machine time. Its unit is the machine-minute, always an integer. It is
// one chain of entries, each at its own position (seq, from 1) and holding the hash of
// the one before, so anyone can check that history was not rewritten. Entries that
// move minutes (settle, transfer, grant, reversal) take them from one account and give
// them to another, so all balances sum to zero: nobody mints. The others record holds
// on an account (hold, release) and its floor (floor). Nothing is ever changed or
// deleted: a mistake is corrected by a reversal.
//
// Balances are not stored: an account's state is folded from the entries that name it.
// So an entry is the only write, a single insert, and a crash can never leave half of
// one. Writers serialize on the chain itself: an entry goes in at the head's seq + 1,
// and the store refuses a seq that is taken, so a writer that lost the race reads the
// new head and decides again. Floors therefore hold on every replica at once.
const (
	KindSettle   = "settle"   // a finished job: the requester pays the lab what the machine printed
	KindTransfer = "transfer" // a person moves minutes to another account
	KindGrant    = "grant"    // a lab's owner moves minutes out of the lab's account
	KindReversal = "reversal" // a site admin's correction of a move: the same minutes back
	KindHold     = "hold"     // minutes set aside on an account for jobs in flight
	KindRelease  = "release"  // a job's hold is let go without cost
	KindFloor    = "floor"    // a site admin sets how far an account may go below zero
)

// Moves are the kinds that move minutes between accounts: the transfers.
var Moves = []string{KindSettle, KindTransfer, KindGrant, KindReversal}

// Lab credit policies.
const (
	CreditsOff      = "off"      // the lab gives its time: no holds, no payment; the minutes are recorded
	CreditsRequired = "required" // jobs hold the requester's minutes and pay the lab when done
)

// DefaultMinutesPerCm3 estimates machine time from a part's volume when a lab sets no
// rate of its own: about 10 cm³ an hour, an FDM printer's pace at common settings.
const DefaultMinutesPerCm3 = 6.0

// LedgerEntry is one entry of the chain.
type LedgerEntry struct {
	Seq       int64      `json:"id"`
	Kind      string     `json:"kind"`
	From      string     `json:"from"`
	To        string     `json:"to"`
	Minutes   int64      `json:"minutes"`
	Made      int64      `json:"made"`  // settle: the machine-minutes the job took (paid for or, at a free lab, given)
	Job       string     `json:"job"`   // settle, release: the job
	Holds     []HoldLine `json:"holds"` // hold: each job's minutes set aside
	Reverses  int64      `json:"reverses,omitempty"`
	Memo      string     `json:"memo"`
	Actor     string     `json:"actor"` // a handle, or "hub"
	CreatedAt time.Time  `json:"created_at"`
	PrevHash  string     `json:"prev_hash"`
	Hash      string     `json:"hash"`
	// Closes is unique among entries: "job:<id>" for what ends a job's hold (so it
	// ends once), "key:<from>:<key>" for a transfer with an idempotency key,
	// "reverse:<seq>" for a reversal, else "entry:<random>". It is not part of the hash.
	Closes string `json:"-"`
}

// HoldLine is one job's hold.
type HoldLine struct {
	Job     string `json:"job"`
	Minutes int64  `json:"minutes"`
}

// ComputeHash is the entry's hash: SHA-256, in hex, of its fields one per line in this
// order: seq, kind, from, to, minutes, made, job, holds (job=minutes, comma-separated),
// reverses, memo (Go-quoted), actor, created_at (RFC 3339, UTC, milliseconds),
// prev_hash. docs/ledger.md says the same for those who check from outside.
func (e LedgerEntry) ComputeHash() string {
	holds := make([]string, len(e.Holds))
	for i, h := range e.Holds {
		holds[i] = h.Job + "=" + strconv.FormatInt(h.Minutes, 10)
	}
	s := strings.Join([]string{strconv.FormatInt(e.Seq, 10), e.Kind, e.From, e.To, strconv.FormatInt(e.Minutes, 10),
		strconv.FormatInt(e.Made, 10), e.Job, strings.Join(holds, ","), strconv.FormatInt(e.Reverses, 10),
		strconv.Quote(e.Memo), e.Actor, e.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"), e.PrevHash}, "\n")
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// LedgerStore keeps the chain. Backends return storage.ErrConflict and
// storage.ErrNotFound.
type LedgerStore interface {
	// LedgerHead returns the entry with the highest seq, or a zero entry when there is none.
	LedgerHead(ctx context.Context) (LedgerEntry, error)
	// AppendLedger inserts e, or returns storage.ErrConflict when its Seq or its
	// Closes is taken.
	AppendLedger(ctx context.Context, e LedgerEntry) error
	// AppendLedgers inserts entries in order, stopping at the first whose Seq or
	// Closes is taken: it returns how many went in (those are stored, the rest are
	// not) and, when it stopped early, that entry's error (storage.ErrConflict).
	AppendLedgers(ctx context.Context, es []LedgerEntry) (int, error)
	// LedgerEntries lists, oldest first, up to limit entries with seq > after that
	// name account as From or To (account "": every entry).
	LedgerEntries(ctx context.Context, account string, after int64, limit int) ([]LedgerEntry, error)
	// LedgerPage lists, newest first, up to limit entries of the given kinds with
	// seq < before that name account as From or To (account "": every entry).
	LedgerPage(ctx context.Context, account string, kinds []string, before int64, limit int) ([]LedgerEntry, error)
	// LedgerClosing returns the entry with this Closes, or storage.ErrNotFound.
	LedgerClosing(ctx context.Context, closes string) (LedgerEntry, error)
}

// Account is an account's state, folded from its entries.
type Account struct {
	Account   string           `json:"account"`
	Balance   int64            `json:"balance"`
	Held      int64            `json:"held"`
	Available int64            `json:"available"` // balance - held
	Floor     int64            `json:"floor"`     // available may not go below it
	Given     int64            `json:"given"`     // a lab: its machines' minutes; a person: minutes labs granted them
	Used      int64            `json:"used"`      // machine-minutes made for this account, paid for or given
	Holds     map[string]int64 `json:"holds"`     // open holds by job
	seq       int64            // the last entry folded in
	closed    map[string]bool  // jobs whose hold has ended
}

// InsufficientCredit refuses what would take an account below its floor.
type InsufficientCredit struct {
	Account          string
	Available, Floor int64
	Need             int64
}

func (e *InsufficientCredit) Error() string {
	return fmt.Sprintf("%s has %d machine-minutes available above its floor of %d; this needs %d",
		e.Account, e.Available-e.Floor, e.Floor, e.Need)
}

// AccountPattern is what an account name looks like: user:<handle> or lab:<slug>.
var AccountPattern = regexp.MustCompile(`^(user|lab):[a-z0-9][a-z0-9_-]{0,62}$`)

// UserAccount and LabAccount name the accounts of a person and a lab.
func UserAccount(handle string) string { return "user:" + handle }
func LabAccount(slug string) string    { return "lab:" + slug }

// Ledger keeps the machine-time ledger over a LedgerStore.
type Ledger struct {
	core
	roles
	store ledgerStore
	users Users
	floor int64 // an account's floor unless a site admin set another
	// turn lets this hub's writers take the chain's next place one at a time: they
	// would only make each other try again. Writers on other hubs still race, and
	// the store settles it. A channel, so a writer whose request ends stops waiting.
	turn chan struct{}
	// records queues the records of jobs made at free labs (see Record).
	records   chan Settlement
	recording atomic.Bool
	unwritten atomic.Int64 // records queued and not yet written (or given up): see Flush
}

// MaxHold is the most machine-minutes one job may hold or cost: about two years of a
// machine. A part that would take longer is refused, and no sum of holds can overflow.
const MaxHold = 1_000_000

// defaultFloor is an account's floor until a site admin sets another: FAB_CREDIT_FLOOR
// for a person (trust to use machines before giving), zero for a lab, whose minutes
// come from the time its machines gave.
func (l *Ledger) defaultFloor(account string) int64 {
	if strings.HasPrefix(account, "lab:") {
		return 0
	}
	return l.floor
}

type ledgerStore interface {
	LedgerStore
	memberStore
	LabBySlug(ctx context.Context, slug string) (Lab, error)
}

// fold applies e to a, an account's state as of the entry before e.
func (a *Account) fold(e LedgerEntry) {
	a.seq = e.Seq
	switch e.Kind {
	case KindFloor:
		if e.From == a.Account {
			a.Floor = e.Minutes
		}
		return
	case KindHold:
		if e.From != a.Account {
			return
		}
		for _, h := range e.Holds {
			if !a.closed[h.Job] {
				a.Holds[h.Job] = h.Minutes
			}
		}
		return
	case KindRelease:
		if e.From == a.Account {
			a.closeJob(e.Job)
		}
		return
	}
	if e.From == a.Account {
		a.Balance -= e.Minutes
		if e.Kind == KindSettle {
			a.Used += e.Made
			a.closeJob(e.Job)
		}
	}
	if e.To == a.Account {
		a.Balance += e.Minutes
		switch e.Kind {
		case KindSettle:
			a.Given += e.Made
		case KindGrant:
			a.Given += e.Minutes
		}
	}
}

func (a *Account) closeJob(job string) {
	if job == "" {
		return
	}
	delete(a.Holds, job)
	a.closed[job] = true
}

func (a *Account) finish() Account {
	a.Held = 0
	for _, m := range a.Holds {
		a.Held += m
	}
	a.Available = a.Balance - a.Held
	return *a
}

// room is how many minutes a may still take out: available above its floor.
func (a Account) room() int64 { return a.Available - a.Floor }

// exists checks that account names a person or a lab of this hub.
func (l *Ledger) exists(ctx context.Context, field, account string) error {
	if !AccountPattern.MatchString(account) {
		return storage.Invalid(field, "want user:<handle> or lab:<slug>")
	}
	kind, name, _ := strings.Cut(account, ":")
	var err error
	if kind == "lab" {
		_, err = l.store.LabBySlug(ctx, name)
	} else {
		_, err = l.users.UserIDByHandle(ctx, name)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("no account %s: %w", account, storage.ErrNotFound)
	}
	return err
}

// state folds account's entries up to and including seq upTo (0: all).
func (l *Ledger) state(ctx context.Context, account string, upTo int64) (Account, error) {
	a := Account{Account: account, Floor: l.defaultFloor(account), Holds: map[string]int64{}, closed: map[string]bool{}}
	err := l.walk(ctx, account, func(e LedgerEntry) bool {
		if upTo > 0 && e.Seq > upTo {
			return false
		}
		a.fold(e)
		return true
	})
	if err != nil {
		return Account{}, err
	}
	return a.finish(), nil
}

// walk reads, oldest first, the entries that name account (every entry when ""), a
// page at a time, until fn returns false.
func (l *Ledger) walk(ctx context.Context, account string, fn func(LedgerEntry) bool) error {
	const page = 1000
	for after := int64(0); ; {
		entries, err := l.store.LedgerEntries(ctx, account, after, page)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !fn(e) {
				return nil
			}
		}
		if len(entries) < page {
			return nil
		}
		after = entries[len(entries)-1].Seq
	}
}

// Account returns an account's state.
func (l *Ledger) Account(ctx context.Context, account string) (Account, error) {
	if err := l.exists(ctx, "account", account); err != nil {
		return Account{}, err
	}
	return l.state(ctx, account, 0)
}

// errAlready reports that the entry a writer meant to add exists: it is returned with it.
var errAlready = errors.New("already in the ledger")

// write adds the entry build makes from the chain's head: build reads what it needs as
// of that head (only entries up to head.Seq count) and may refuse. The entry goes in at
// head.Seq + 1; when another writer took that place first, build runs again on the new
// head. When an entry with the same Closes exists, that one is returned with errAlready.
func (l *Ledger) write(ctx context.Context, closes string, build func(head LedgerEntry) (LedgerEntry, error)) (LedgerEntry, error) {
	// Done before? Then a retry gets the first answer, whatever changed since. Asked
	// again on every attempt: the first may have been made while this one waited.
	done := func() (LedgerEntry, error) {
		if closes == "" {
			return LedgerEntry{}, nil
		}
		prev, err := l.store.LedgerClosing(ctx, closes)
		switch {
		case err == nil:
			return prev, errAlready
		case errors.Is(err, storage.ErrNotFound):
			return LedgerEntry{}, nil
		}
		return LedgerEntry{}, err
	}
	if prev, err := done(); err != nil {
		return prev, err
	}
	select {
	case l.turn <- struct{}{}:
		defer func() { <-l.turn }()
	case <-ctx.Done():
		return LedgerEntry{}, ctx.Err()
	}
	for attempt := range 400 {
		if prev, err := done(); err != nil {
			return prev, err
		}
		head, err := l.store.LedgerHead(ctx)
		if err != nil {
			return LedgerEntry{}, err
		}
		e, err := build(head)
		if err != nil {
			// The entry may have been made (by another hub) between done and the head
			// that build judged by, which then counts it: a retry of a transfer that
			// emptied the account must get that transfer, not a refusal.
			if prev, derr := done(); derr != nil {
				return prev, derr
			}
			return LedgerEntry{}, err
		}
		e.Seq, e.PrevHash, e.CreatedAt = head.Seq+1, head.Hash, l.clock()
		if e.Closes == "" { // closes nothing: unique to this entry
			e.Closes = "entry:" + strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
		}
		if e.Holds == nil {
			e.Holds = []HoldLine{}
		}
		e.Hash = e.ComputeHash()
		err = l.store.AppendLedger(ctx, e)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, storage.ErrConflict) {
			return LedgerEntry{}, err
		}
		if prev, err := l.store.LedgerClosing(ctx, e.Closes); err == nil {
			return prev, errAlready
		}
		// Lost the race for the seq: back off a little, more as contention grows.
		select {
		case <-ctx.Done():
			return LedgerEntry{}, ctx.Err()
		case <-time.After(time.Duration(rand.IntN(1+min(attempt, 20))) * time.Millisecond):
		}
	}
	return LedgerEntry{}, fmt.Errorf("the ledger was too busy to take the entry: %w", storage.ErrConflict)
}

// Hold sets minutes aside on account for jobs about to be created, if they fit above
// its floor; else *InsufficientCredit.
func (l *Ledger) Hold(ctx context.Context, account string, lines []HoldLine) error {
	var need int64
	for _, h := range lines {
		if h.Minutes < 1 || h.Minutes > MaxHold {
			return storage.Invalid("files", fmt.Sprintf("a job may hold 1 to %d machine-minutes", MaxHold))
		}
		need += h.Minutes // at most MaxOrderJobs × MaxHold: no overflow
	}
	_, err := l.write(ctx, "", func(head LedgerEntry) (LedgerEntry, error) {
		a, err := l.state(ctx, account, head.Seq)
		if err != nil {
			return LedgerEntry{}, err
		}
		if a.room() < need {
			return LedgerEntry{}, &InsufficientCredit{Account: account, Available: a.Available, Floor: a.Floor, Need: need}
		}
		return LedgerEntry{Kind: KindHold, From: account, Holds: lines, Actor: "hub", Memo: "held for an order"}, nil
	})
	return err
}

// AdjustHold makes a job's open hold minutes (a slicer's estimate came in). A larger
// hold must fit above the floor, else *InsufficientCredit; a closed hold stays closed.
func (l *Ledger) AdjustHold(ctx context.Context, account, job string, minutes int64) error {
	if minutes < 1 || minutes > MaxHold {
		return storage.Invalid("estimate", fmt.Sprintf("want 1 to %d machine-minutes", MaxHold))
	}
	_, err := l.write(ctx, "", func(head LedgerEntry) (LedgerEntry, error) {
		a, err := l.state(ctx, account, head.Seq)
		if err != nil {
			return LedgerEntry{}, err
		}
		old, open := a.Holds[job]
		if !open {
			return LedgerEntry{}, errNoChange
		}
		if old == minutes {
			return LedgerEntry{}, errNoChange
		}
		if minutes > old && a.room() < minutes-old {
			return LedgerEntry{}, &InsufficientCredit{Account: account, Available: a.Available, Floor: a.Floor, Need: minutes - old}
		}
		return LedgerEntry{Kind: KindHold, From: account, Holds: []HoldLine{{Job: job, Minutes: minutes}}, Actor: "hub", Memo: "the slicer's estimate"}, nil
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	return err
}

var errNoChange = errors.New("no change to the ledger")

// Settlement is how a job's time ends in the ledger.
type Settlement struct {
	Job       string
	Requester string // account
	Lab       string // account
	Made      int64  // machine-minutes the job took; 0 with Charge false: released
	Charge    bool   // the lab requires credits: the requester pays
}

// Close ends a job's time in the ledger, once: a job that was made is settled (paid,
// or at a free lab recorded as given) and its hold released in the same entry; one that
// was not releases its hold. Payment never takes the requester below their floor: what
// does not fit is the lab's loss, and the memo says so. A second Close of the same job
// returns the first one's entry.
func (l *Ledger) Close(ctx context.Context, s Settlement) (LedgerEntry, error) {
	e, err := l.write(ctx, "job:"+s.Job, func(head LedgerEntry) (LedgerEntry, error) {
		if !s.Charge && s.Made > 0 { // a record of time given: nothing to check
			return given(s), nil
		}
		a, err := l.state(ctx, s.Requester, head.Seq)
		if err != nil {
			return LedgerEntry{}, err
		}
		held, open := a.Holds[s.Job]
		if s.Made <= 0 {
			if !open {
				return LedgerEntry{}, errNoChange
			}
			return LedgerEntry{Kind: KindRelease, From: s.Requester, Job: s.Job, Actor: "hub",
				Memo: "not made: the hold is released", Closes: "job:" + s.Job}, nil
		}
		e := LedgerEntry{Kind: KindSettle, From: s.Requester, To: s.Lab, Made: s.Made, Job: s.Job, Actor: "hub", Closes: "job:" + s.Job}
		// A print is charged what it took, but never more than twice what it held (the
		// slicer's estimate, or the part's volume at the lab's rate): a print that ran
		// on, or a clock that lied, is the lab's loss, not the requester's. Nor below
		// the requester's floor (the job's own hold is released in the same step).
		e.Minutes = min(s.Made, max(a.room()+held, 0), MaxHold)
		if held > 0 {
			e.Minutes = min(e.Minutes, 2*held)
		}
		e.Memo = fmt.Sprintf("%d machine-minutes made", s.Made)
		if e.Minutes < s.Made {
			e.Memo += fmt.Sprintf("; %d not charged (over twice the hold, or the requester's floor)", s.Made-e.Minutes)
		}
		return e, nil
	})
	if errors.Is(err, errAlready) {
		return e, nil
	}
	if errors.Is(err, errNoChange) {
		return LedgerEntry{}, nil
	}
	return e, err
}

// TransferRequest is a move of minutes a person asks for.
type TransferRequest struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Minutes int64  `json:"minutes"`
	Memo    string `json:"memo"`
}

// Transfer moves minutes from an account the actor may spend from: their own, or a
// lab's they own (a grant). key makes a retry safe: the same key from the same account
// returns the first transfer and created false.
func (l *Ledger) Transfer(ctx context.Context, actor Actor, req TransferRequest, key string) (LedgerEntry, bool, error) {
	if !AccountPattern.MatchString(req.From) {
		return LedgerEntry{}, false, storage.Invalid("from", "want user:<handle> or lab:<slug>")
	}
	if err := l.exists(ctx, "to", req.To); errors.Is(err, storage.ErrNotFound) {
		return LedgerEntry{}, false, storage.Invalid("to", err.Error())
	} else if err != nil {
		return LedgerEntry{}, false, err
	}
	if req.To == req.From {
		return LedgerEntry{}, false, storage.Invalid("to", "a transfer goes to another account")
	}
	if req.Minutes < 1 || req.Minutes > 1_000_000 {
		return LedgerEntry{}, false, storage.Invalid("minutes", "want 1 to 1,000,000 machine-minutes")
	}
	if err := checkLine("memo", req.Memo, 200); err != nil {
		return LedgerEntry{}, false, err
	}
	if err := checkLine("Idempotency-Key", key, 100); err != nil {
		return LedgerEntry{}, false, err
	}
	kind := KindTransfer
	switch {
	case req.From == UserAccount(actor.Handle):
	case strings.HasPrefix(req.From, "lab:"):
		lab, err := l.store.LabBySlug(ctx, strings.TrimPrefix(req.From, "lab:"))
		if errors.Is(err, storage.ErrNotFound) {
			return LedgerEntry{}, false, storage.Invalid("from", "no such lab")
		}
		if err != nil {
			return LedgerEntry{}, false, err
		}
		// Its owners only, by membership: a site admin does not spend a lab's minutes.
		if m, err := l.store.Member(ctx, lab.ID, actor.ID); err != nil || m.Role != RoleOwner || actor.ID == "" {
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return LedgerEntry{}, false, err
			}
			return LedgerEntry{}, false, fmt.Errorf("only the lab's owners move minutes out of its account: %w", storage.ErrForbidden)
		}
		kind = KindGrant
	default:
		return LedgerEntry{}, false, fmt.Errorf("you may move minutes only out of your own account or a lab's you own: %w", storage.ErrForbidden)
	}
	closes := ""
	if key != "" {
		closes = "key:" + req.From + ":" + key
		if prev, err := l.store.LedgerClosing(ctx, closes); err == nil { // a retry: the first answer, free
			return sameTransfer(prev, req)
		}
	}
	if err := l.useQuota(ctx, actor, "transfers", 1, transfersPerDay, 24*time.Hour, "transfers a day"); err != nil {
		return LedgerEntry{}, false, err
	}
	e, err := l.write(ctx, closes, func(head LedgerEntry) (LedgerEntry, error) {
		a, err := l.state(ctx, req.From, head.Seq)
		if err != nil {
			return LedgerEntry{}, err
		}
		// A person's trust below zero is for using machines, not for passing on: a
		// person moves only minutes they have, so new accounts cannot pool their
		// floors into one. (A lab's floor is zero unless a site admin set it.)
		if kind == KindTransfer {
			a.Floor = max(a.Floor, 0)
		}
		if a.room() < req.Minutes {
			return LedgerEntry{}, &InsufficientCredit{Account: req.From, Available: a.Available, Floor: a.Floor, Need: req.Minutes}
		}
		return LedgerEntry{Kind: kind, From: req.From, To: req.To, Minutes: req.Minutes, Memo: req.Memo, Actor: actor.Handle, Closes: closes}, nil
	})
	if errors.Is(err, errAlready) {
		return sameTransfer(e, req)
	}
	return e, err == nil, err
}

// sameTransfer answers a retry with the transfer its key made, if it asked for the same.
func sameTransfer(e LedgerEntry, req TransferRequest) (LedgerEntry, bool, error) {
	if e.From != req.From || e.To != req.To || e.Minutes != req.Minutes || e.Memo != req.Memo {
		return LedgerEntry{}, false, fmt.Errorf("this Idempotency-Key was used for another transfer: %w", storage.ErrConflict)
	}
	return e, false, nil
}

// Reverse is a site admin's correction: a new move of the same minutes back. It is
// refused when that would take the account below its floor, like any other move, and
// made once per entry.
func (l *Ledger) Reverse(ctx context.Context, actor Actor, seq int64, memo string) (LedgerEntry, bool, error) {
	if !actor.Admin {
		return LedgerEntry{}, false, fmt.Errorf("only site admins reverse transfers: %w", storage.ErrForbidden)
	}
	if err := checkLine("memo", memo, 200); err != nil {
		return LedgerEntry{}, false, err
	}
	page, err := l.store.LedgerEntries(ctx, "", seq-1, 1)
	if err != nil {
		return LedgerEntry{}, false, err
	}
	if len(page) == 0 || page[0].Seq != seq {
		return LedgerEntry{}, false, fmt.Errorf("transfer %d: %w", seq, storage.ErrNotFound)
	}
	orig := page[0]
	switch orig.Kind {
	case KindSettle, KindTransfer, KindGrant:
	default:
		return LedgerEntry{}, false, storage.Invalid("id", "only settlements, transfers and grants can be reversed")
	}
	if orig.Minutes == 0 {
		return LedgerEntry{}, false, storage.Invalid("id", "this entry moved no minutes")
	}
	e, err := l.write(ctx, "reverse:"+strconv.FormatInt(orig.Seq, 10), func(head LedgerEntry) (LedgerEntry, error) {
		a, err := l.state(ctx, orig.To, head.Seq)
		if err != nil {
			return LedgerEntry{}, err
		}
		if a.room() < orig.Minutes {
			return LedgerEntry{}, &InsufficientCredit{Account: orig.To, Available: a.Available, Floor: a.Floor, Need: orig.Minutes}
		}
		e := LedgerEntry{Kind: KindReversal, From: orig.To, To: orig.From, Minutes: orig.Minutes, Reverses: orig.Seq,
			Memo: orDefault(memo, fmt.Sprintf("reverses %d", orig.Seq)), Actor: actor.Handle, Closes: "reverse:" + strconv.FormatInt(orig.Seq, 10)}
		return e, nil
	})
	if errors.Is(err, errAlready) {
		return e, false, nil
	}
	return e, err == nil, err
}

// SetFloor is a site admin's choice of another floor for one account.
func (l *Ledger) SetFloor(ctx context.Context, actor Actor, account string, floor int64) (LedgerEntry, error) {
	if !actor.Admin {
		return LedgerEntry{}, fmt.Errorf("only site admins set floors: %w", storage.ErrForbidden)
	}
	if err := l.exists(ctx, "account", account); err != nil {
		return LedgerEntry{}, err
	}
	if floor > 0 || floor < -1_000_000 {
		return LedgerEntry{}, storage.Invalid("floor", "want 0 down to -1,000,000 machine-minutes")
	}
	return l.write(ctx, "", func(LedgerEntry) (LedgerEntry, error) {
		return LedgerEntry{Kind: KindFloor, From: account, Minutes: floor, Actor: actor.Handle, Memo: "floor set"}, nil
	})
}

// Transfers lists the moves that name account (every move when ""), newest first,
// before seq before (0: from the newest).
func (l *Ledger) Transfers(ctx context.Context, account string, before int64, limit int) ([]LedgerEntry, error) {
	if account != "" && !AccountPattern.MatchString(account) {
		return nil, storage.Invalid("account", "want user:<handle> or lab:<slug>")
	}
	if before <= 0 {
		before = 1 << 62
	}
	return l.store.LedgerPage(ctx, account, Moves, before, limit)
}

// Entries lists the whole chain in order from after, for those who check it.
func (l *Ledger) Entries(ctx context.Context, after int64, limit int) ([]LedgerEntry, error) {
	return l.store.LedgerEntries(ctx, "", after, limit)
}

// Verification is the ledger checked from its entries alone.
type Verification struct {
	OK       bool   `json:"ok"`
	Accounts int    `json:"accounts"`
	Sum      int64  `json:"sum"`      // of every balance: zero
	ChainOK  bool   `json:"chain_ok"` // every hash recomputes and links to the one before
	FloorsOK bool   `json:"floors_ok"`
	Checked  int64  `json:"checked"` // entries
	Problem  string `json:"problem,omitempty"`
}

// Verify recomputes every balance and hash from the entries.
func (l *Ledger) Verify(ctx context.Context) (Verification, error) {
	v := Verification{ChainOK: true, FloorsOK: true}
	balances := map[string]int64{}
	floors := map[string]int64{}
	prev := ""
	err := l.walk(ctx, "", func(e LedgerEntry) bool {
		v.Checked++
		if v.ChainOK && (e.Seq != v.Checked || e.PrevHash != prev || e.ComputeHash() != e.Hash) {
			v.ChainOK, v.Problem = false, fmt.Sprintf("entry %d does not match the chain", e.Seq)
		}
		prev = e.Hash
		switch e.Kind {
		case KindFloor:
			floors[e.From] = e.Minutes
		case KindHold, KindRelease: // move nothing
		default:
			balances[e.From] -= e.Minutes
			balances[e.To] += e.Minutes
			if e.Minutes > 0 {
				floor, ok := floors[e.From]
				if !ok {
					floor = l.defaultFloor(e.From)
				}
				if balances[e.From] < floor && v.FloorsOK {
					v.FloorsOK, v.Problem = false, fmt.Sprintf("entry %d takes %s below its floor", e.Seq, e.From)
				}
			}
		}
		return true
	})
	if err != nil {
		return v, err
	}
	for _, b := range balances {
		v.Sum += b
	}
	v.Accounts = len(balances)
	v.OK = v.ChainOK && v.FloorsOK && v.Sum == 0
	return v, nil
}

// HoldMinutes estimates a part's machine time at a lab: its volume (mm³) at the lab's
// rate, at least one minute.
func HoldMinutes(volumeMM3 float64, p Policy) int64 {
	rate := p.MinutesPerCm3
	if rate <= 0 {
		rate = DefaultMinutesPerCm3
	}
	m := math.Ceil(volumeMM3 / 1000 * rate)
	if !(m < MaxHold) { // also NaN: refused by the caller, never converted out of range
		return MaxHold + 1
	}
	return max(int64(m), 1)
}

// minutesOf is machine time in whole minutes, a started minute counting whole.
func minutesOf(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Minute - 1) / time.Minute)
}

// OpenHold is a hold not yet settled or released.
type OpenHold struct {
	Job     string
	Account string
	Minutes int64
	Since   time.Time
}

// OpenHolds folds the whole chain for the holds still open.
func (l *Ledger) OpenHolds(ctx context.Context) ([]OpenHold, error) {
	open := map[string]OpenHold{}
	closed := map[string]bool{}
	err := l.walk(ctx, "", func(e LedgerEntry) bool {
		switch {
		case e.Kind == KindHold:
			for _, h := range e.Holds {
				if !closed[h.Job] {
					since := e.CreatedAt
					if prev, ok := open[h.Job]; ok {
						since = prev.Since
					}
					open[h.Job] = OpenHold{Job: h.Job, Account: e.From, Minutes: h.Minutes, Since: since}
				}
			}
		case e.Job != "":
			delete(open, e.Job)
			closed[e.Job] = true
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	out := make([]OpenHold, 0, len(open))
	for _, h := range open {
		out = append(out, h)
	}
	return out, nil
}

// SettleEnded closes the holds that a job's end left open: a hub stopped between
// saving the job and settling it, or an order failed after its hold was placed (its
// jobs never existed; released after ten minutes, when the order cannot still be on
// its way in). It returns how many it closed.
func (b *jobBook) SettleEnded(ctx context.Context) (int, error) {
	open, err := b.ledger.OpenHolds(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var first error // one job that cannot be settled does not hold up the others
	for _, h := range open {
		j, err := b.store.Job(ctx, h.Job)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			if b.clock().Sub(h.Since) < 10*time.Minute {
				continue
			}
			_, err = b.ledger.Close(ctx, Settlement{Job: h.Job, Requester: h.Account}) // a release
		case err != nil:
		case j.Terminal() || j.State == JobAwaitingHarvest:
			err = b.settle(ctx, j, j.madeTime(), true)
		default:
			continue
		}
		if err != nil {
			first = cmp.Or(first, err)
			continue
		}
		n++
	}
	// Records of free makes are written after the job is saved, in batches, from a
	// queue in memory: each lab's latest 100 makes are looked at again (see also
	// RecordLost).
	r, err := b.recordMade(ctx, time.Time{}, 100)
	return n + r, cmp.Or(first, err)
}

// RecordLost writes the records of free labs' makes that a hub which crashed lost
// from its queue in memory (one that stops writes them first: Flush). A hub calls it
// once when it starts, before its labs make much: it looks at every make of the 10
// minutes before the latest one, up to a queue's worth a lab, and records those that
// have none. It returns how many it recorded.
func (b *jobBook) RecordLost(ctx context.Context) (int, error) {
	latest, err := b.LatestMade(ctx)
	if err != nil {
		return 0, err
	}
	return b.recordMade(ctx, latest.Add(-10*time.Minute), recordsQueued+recordBatch)
}

// recordMade records the free labs' makes done since since that have no record, of
// each lab's latest perLab makes.
func (b *jobBook) recordMade(ctx context.Context, since time.Time, perLab int) (int, error) {
	made, err := b.latest(ctx, []string{JobDone, JobAwaitingHarvest}, since, perLab)
	if err != nil {
		return 0, err
	}
	n := 0
	var first error
	for _, j := range made {
		if j.Charged || minutesOf(j.madeTime()) == 0 {
			continue // a charged job has a hold, seen above
		}
		if _, ok, err := b.ledger.JobEntry(ctx, j.ID); err != nil || ok {
			first = cmp.Or(first, err)
			continue
		}
		if err := b.settle(ctx, j, j.madeTime(), true); err != nil {
			first = cmp.Or(first, err)
			continue
		}
		n++
	}
	return n, first
}

// JobEntry is the entry that ended a job's time (its settlement or release), if any.
func (l *Ledger) JobEntry(ctx context.Context, job string) (LedgerEntry, bool, error) {
	e, err := l.store.LedgerClosing(ctx, "job:"+job)
	if errors.Is(err, storage.ErrNotFound) {
		return LedgerEntry{}, false, nil
	}
	return e, err == nil, err
}

// transfersPerDay bounds the transfers without an Idempotency-Key one person makes a
// day: each is an entry in everyone's chain forever. (A keyed retry is free.)
const transfersPerDay = 200

// checkLine is checkText for one line shown on public pages: no control characters
// and no bidirectional overrides, which could make a memo read as something else.
func checkLine(field, v string, maxLen int) error {
	if err := checkText(field, v, maxLen, false); err != nil {
		return err
	}
	for _, r := range v {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return storage.Invalid(field, "one line of text, without control characters")
		}
	}
	return nil
}

// Record writes, soon, the record of a job a free lab made: a settle entry that moves
// nothing and says what was given. Free labs hold nothing, so nothing needs checking:
// one goroutine writes such records in batches, taking the chain's head once a batch,
// and making never waits on the chain. When the queue is full the caller writes its
// record itself. A hub stopped before writing one leaves it to SettleEnded.
func (l *Ledger) Record(st Settlement) {
	l.unwritten.Add(1)
	select {
	case l.records <- st:
	default:
		l.unwritten.Add(-1)
		if _, err := l.Close(context.Background(), st); err != nil {
			l.log.Warn("ledger: record not written", "job", st.Job, "err", err)
		}
		return
	}
	if l.recording.CompareAndSwap(false, true) {
		go l.recorder()
	}
}

// The queue of free labs' records (see Record) holds recordsQueued; the recorder takes
// them recordBatch at a time.
const (
	recordsQueued = 4096
	recordBatch   = 256
)

// given is the record of a job a free lab made: a settlement that moves nothing.
func given(s Settlement) LedgerEntry {
	return LedgerEntry{Kind: KindSettle, From: s.Requester, To: s.Lab, Made: s.Made, Job: s.Job, Actor: "hub",
		Memo: "given by the lab", Closes: "job:" + s.Job}
}

// recorder drains the queue of records, and ends when it has been empty a while.
func (l *Ledger) recorder() {
	for {
		var batch []LedgerEntry
		select {
		case st := <-l.records:
			batch = append(batch, given(st))
		case <-time.After(2 * time.Second):
			l.recording.Store(false)
			// A record queued just as this goroutine stopped looking?
			if len(l.records) == 0 || !l.recording.CompareAndSwap(false, true) {
				return
			}
			continue
		}
	more:
		for len(batch) < recordBatch {
			select {
			case st := <-l.records:
				batch = append(batch, given(st))
			default:
				break more
			}
		}
		// A batch the store refuses (a full disk) is tried again, for about a minute;
		// the records wait in memory meanwhile, and Flush waits for them.
		for wait := time.Second; ; wait *= 2 {
			err := l.writeBatch(context.Background(), batch)
			if err == nil {
				break
			}
			if wait > time.Minute {
				l.log.Warn("ledger: records not written; SettleEnded looks at each lab's latest makes", "records", len(batch), "err", err)
				break
			}
			l.log.Warn("ledger: records not written; trying again", "records", len(batch), "in", wait, "err", err)
			time.Sleep(wait)
		}
		l.unwritten.Add(-int64(len(batch)))
	}
}

// Flush waits until the records queued so far are written (or given up, logged), or
// ctx ends: a hub that stops calls it once it serves no more, before its store
// closes, so that the records of the last jobs made are not left to SettleEnded.
func (l *Ledger) Flush(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for l.unwritten.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d records of free labs' makes not written: %w", l.unwritten.Load(), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// writeBatch appends entries that need no check at consecutive places of the chain.
// One that closes what is closed already is left out; when another hub took a place,
// the rest go after the new head.
func (l *Ledger) writeBatch(ctx context.Context, batch []LedgerEntry) error {
	l.turn <- struct{}{}
	defer func() { <-l.turn }()
	for attempt := 0; len(batch) > 0; attempt++ {
		if attempt == 400 {
			return fmt.Errorf("the ledger was too busy: %w", storage.ErrConflict)
		}
		head, err := l.store.LedgerHead(ctx)
		if err != nil {
			return err
		}
		prev, now := head, l.clock()
		for i := range batch {
			e := &batch[i]
			e.Seq, e.PrevHash, e.CreatedAt, e.Holds = prev.Seq+1, prev.Hash, now, []HoldLine{}
			e.Hash = e.ComputeHash()
			prev = *e
		}
		n, err := l.store.AppendLedgers(ctx, batch)
		if n == len(batch) {
			return nil
		}
		if !errors.Is(err, storage.ErrConflict) {
			return err
		}
		if _, err := l.store.LedgerClosing(ctx, batch[n].Closes); err == nil {
			n++ // recorded before: leave it out
		}
		batch = batch[n:]
	}
	return nil
}

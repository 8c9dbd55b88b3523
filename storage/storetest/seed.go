package storetest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fabcommons/fabcommons/account"
	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/webhook"
	"github.com/fabcommons/fabcommons/federation"
	"github.com/fabcommons/fabcommons/storage"
)

// Seed is what SeedAll wrote that a test checks afterwards.
type Seed struct {
	Handle, Password string // a user who can sign in
	Token            string // a token secret of theirs
	Blobs            []string
}

// SeedAll fills new stores with every kind of record a hub keeps, each with its
// optional fields set (pointers, lists, logs, hidden and disabled flags), through the
// store seams and the ledger service as a hub writes them: data to carry from one
// backend to another and compare.
func SeedAll(t *testing.T, accounts account.Store, cat catalog.Store, fab fabrication.Store, hooks webhook.Store, fed federation.Store, blobs storage.Blobs) Seed {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	seed := Seed{Handle: "ada", Password: "a long passphrase for ada"}
	hash, err := account.HashPassword(seed.Password, account.Argon2Params{MemoryKiB: 1024, Time: 1, Threads: 1})
	must(err)
	ada := newUser("ada")
	ada.PasswordHash = hash
	_, err = accounts.CreateUser(ctx, ada)
	must(err)
	_, err = accounts.CreateUser(ctx, newUser("bob"))
	must(err)
	_, err = accounts.CreateUser(ctx, newUser("eve"))
	must(err)
	_, err = accounts.CreateUser(ctx, newUser("banker")) // owns the lab that grants (give)
	must(err)
	must(accounts.SetDisabled(ctx, "u-eve", true))
	secret, tokenHash := "fab_p_seedsecret0123456789", account.HashSecret("fab_p_seedsecret0123456789")
	seed.Token = secret
	must(accounts.CreateToken(ctx, account.Token{ID: "t1", UserID: "u-ada", Name: "laptop", Prefix: secret[:10], Hash: tokenHash, CreatedAt: at(1)}))
	must(accounts.TouchToken(ctx, "t1", at(2)))
	must(accounts.CreateToken(ctx, account.Token{ID: "t2", UserID: "u-bob", Name: "ci", Prefix: "fab_bobbob", Hash: account.HashSecret("bob"), CreatedAt: at(3)}))

	// Three designs: one with two versions, featured; a fork of it; a hidden one.
	var files []catalog.File
	for i, content := range []string{"solid base\nendsolid base\n", "# Holder\nPrint in PETG.\n", "solid lid\nendsolid lid\n", "solid taken down\nendsolid taken down\n"} {
		info, err := blobs.Put(ctx, bytes.NewReader([]byte(content)), 1<<20, "")
		must(err)
		seed.Blobs = append(seed.Blobs, info.Key)
		path := []string{"parts/base.stl", "README.md", "parts/lid.stl", "parts/withdrawn.stl"}[i]
		files = append(files, catalog.File{Path: path, SHA256: info.Key, Size: info.Size, Kind: catalog.FileDocument})
	}
	d1, v1 := sampleDesign(1, "Filament holder", "spool", "holder")
	d1.Licensor = "Ada's Makerspace e.V." // published by ada on its behalf
	v1.Files = files[:2]
	must(cat.CreateDesign(ctx, d1, v1))
	v2 := v1
	v2.Number, v2.Message, v2.Files, v2.CreatedAt = 2, "Stronger base", files[:3], at(30)
	d1.LatestVersion, d1.UpdatedAt = 2, at(30)
	must(cat.AddVersion(ctx, v2, d1))
	must(cat.SetFeatured(ctx, d1.ID, true))
	must(cat.SetCounters(ctx, d1.ID, catalog.Counters{Forks: 1, Makes: 2, JobsOK: 1, JobsFailed: 1}))
	d2, v2f := sampleDesign(2, "Filament holder, wide")
	d2.OwnerID, d2.Owner = "u-bob", "bob"
	d2.Parents = []catalog.ParentRef{{DesignID: d1.ID, Slug: d1.Slug, Version: 2, Title: d1.Title, Owner: "ada", Licensor: d1.Licensor, License: d1.License}}
	v2f.Files, v2f.CreatedBy, v2f.BOM = files[1:2], "bob", nil
	must(cat.CreateDesign(ctx, d2, v2f))
	d3, v3 := sampleDesign(3, "Something taken down")
	v3.Files, v3.BOM = files[3:], v3.BOM[1:] // its own file, which a public archive leaves out
	must(cat.CreateDesign(ctx, d3, v3))
	must(cat.SetHidden(ctx, d3.ID, true, at(40)))
	// A remote design heard of from another hub at its third version (the hub did not
	// follow it before): its file not fetched yet, its parent named by URL only.
	d4, v4 := sampleDesign(4, "Remote clamp")
	d4.LatestVersion, v4.Number = 3, 3
	d4.OwnerID, d4.Owner = "remote:b.example", "@grace@b.example"
	d4.Origin = &catalog.Origin{Hub: "b.example", Object: "https://b.example/designs/clamp", URL: "https://b.example/designs/clamp"}
	d4.Parents = []catalog.ParentRef{{URL: "https://c.example/designs/vise", Title: "Vise", Owner: "@lin@c.example", License: "CERN-OHL-S-2.0", Version: 2}}
	v4.Files, v4.BOM, v4.CreatedBy = []catalog.File{{Path: "clamp.stl", SHA256: strings.Repeat("4", 64), Size: 684, Kind: catalog.FileMesh,
		Origin: "https://b.example/api/v1/designs/clamp/versions/3/files/clamp.stl"}}, nil, "@grace@b.example"
	must(cat.CreateDesign(ctx, d4, v4))
	must(cat.AddFlag(ctx, catalog.Flag{DesignID: d2.ID, UserID: "u-ada", Handle: "ada", Reason: "missing attribution", CreatedAt: at(41)}))

	// A lab with a member, a join token, two machines, an order of two jobs at two
	// stages, fair-share usage and a ledger with grants, a hold and a settlement.
	lab := sampleLab("town")
	lab.Location, lab.Policy.Credits, lab.Policy.MinutesPerCm3 = "Main street 1", "required", 2.5
	must(fab.CreateLab(ctx, lab, fabrication.Member{LabID: lab.ID, UserID: "u-ada", Handle: "ada", Role: fabrication.RoleOwner}))
	must(fab.PutMember(ctx, fabrication.Member{LabID: lab.ID, UserID: "u-bob", Handle: "bob", Role: fabrication.RoleOperator}))
	must(fab.CreateJoinToken(ctx, fabrication.JoinToken{ID: "jt1", LabID: lab.ID, Name: "shelf", Prefix: "fabj_shelf", Hash: account.HashSecret("join"), CreatedAt: at(5)}))
	seen := at(50)
	m1 := fabrication.Machine{ID: "m1", LabID: lab.ID, Name: "Prusa MK4", Process: "fdm", BuildVolume: fabrication.Volume{X: 250, Y: 210, Z: 220},
		Nozzle: 0.4, Materials: []string{"PLA", "PETG"}, Tags: []string{"enclosed"}, Driver: "octoprint", State: fabrication.MachineBusy,
		Approved: true, JoinTokenID: "jt1", LastSeen: &seen, TokenHash: account.HashSecret("machine"), CreatedAt: at(6)}
	must(fab.CreateMachine(ctx, m1))
	m2 := fabrication.Machine{ID: "m2", LabID: lab.ID, Name: "Laser", Process: "laser", State: fabrication.MachineOffline, Retired: true, CreatedAt: at(7)}
	must(fab.CreateMachine(ctx, m2))
	must(fab.TouchMachine(ctx, "m1", at(51), fabrication.MachineBusy, fabrication.MachineBusy))

	order := fabrication.Order{ID: "o1", RequesterID: "u-bob", Requester: "bob", LabID: lab.ID, LabSlug: lab.Slug, DesignID: d1.ID, DesignSlug: d1.Slug,
		DesignTitle: d1.Title, Version: 2, Material: "PETG", Colour: "orange", Process: "fdm", Quantity: 1, Files: []string{"parts/base.stl"},
		BOMRefs: []string{"B1"}, CreatedAt: at(10)}
	j1, j2 := sampleJob("j1", lab.ID, 0, 10*time.Minute), sampleJob("j2", lab.ID, 1, 11*time.Minute)
	for _, j := range []*fabrication.Job{&j1, &j2} {
		j.OrderID, j.RequesterID, j.Requester, j.DesignID, j.DesignSlug, j.Version = order.ID, "u-bob", "bob", d1.ID, d1.Slug, 2
		j.Charged, j.HoldMinutes = true, 30
	}
	must(fab.CreateOrder(ctx, order, []fabrication.Job{j1, j2}))
	started, expires, finished := at(20), at(80), at(45)
	j1.State, j1.MachineID, j1.Holding, j1.LeaseHash, j1.LeaseExpires, j1.StartedAt = fabrication.JobPrinting, "m1", true, "leasehash", &expires, &started
	j1.Attempts, j1.Progress, j1.Message, j1.Estimate, j1.UpdatedAt = 1, 0.42, "layer 40 of 95", &fabrication.Estimate{Seconds: 5400, FilamentMM: 8123.5}, at(21)
	j1.Events = append(j1.Events, fabrication.Event{At: at(20), Kind: fabrication.JobPrinting, From: fabrication.JobAssigned, To: fabrication.JobPrinting, Actor: "machine:Prusa MK4"})
	must(fab.SaveJob(ctx, j1, 0))
	j2.State, j2.StartedAt, j2.FinishedAt, j2.Failures, j2.UpdatedAt = fabrication.JobDone, &started, &finished, 1, finished
	photo, err := blobs.Put(ctx, bytes.NewReader([]byte("\x89PNG a photo of the make")), 1<<20, "")
	must(err)
	seed.Blobs = append(seed.Blobs, photo.Key) // Blobs[4]: a photo of j2, by the camera
	j2.Photos = []fabrication.Photo{{Key: photo.Key, Size: photo.Size, ContentType: "image/png", Width: 640, Height: 480,
		Source: fabrication.PhotoCamera, By: "machine:Prusa MK4", At: finished}}
	j2.Events = append(j2.Events, fabrication.Event{At: finished, Kind: fabrication.JobDone, To: fabrication.JobDone, Actor: "hub", Message: "done"})
	must(fab.SaveJob(ctx, j2, 0))
	must(fab.AddUsage(ctx, lab.ID, "u-bob", 1500, at(45)))

	// A lab's webhook with a delivery that failed once and waits for its retry.
	must(hooks.CreateHook(ctx, webhook.Hook{ID: "wh1", OwnerID: "u-ada", LabID: lab.ID, Lab: lab.Slug, URL: "https://hooks.example.org/fab",
		Events: []string{webhook.JobDone, webhook.JobFailed}, Secret: "whsec_seed", CreatedAt: at(60)}))
	// The site admin's hook for the whole hub: every design reported.
	must(hooks.CreateHook(ctx, webhook.Hook{ID: "wh2", OwnerID: "u-ada", URL: "https://hooks.example.org/curation",
		Events: []string{webhook.DesignReported}, Hub: true, Secret: "whsec_hub", CreatedAt: at(61)}))
	must(hooks.AddDelivery(ctx, webhook.Delivery{ID: "dl1", HookID: "wh1", Event: webhook.JobDone, Payload: []byte(`{"event":"job.done","job":"j2"}`),
		State: webhook.Pending, Attempts: 1, NextAttemptAt: at(62), LastStatus: 500, LastError: "the receiver answered 500", CreatedAt: at(61), UpdatedAt: at(61)}))

	// Federation: the instance's and ada's key pairs, a follow of another hub, a
	// follower of the lab, and a blocked host.
	for _, owner := range []string{"instance", "person:u-ada"} {
		must(fed.AddKey(ctx, federation.Key{Owner: owner, PublicPEM: "-----BEGIN PUBLIC KEY-----\nseedpublic\n-----END PUBLIC KEY-----\n",
			PrivatePEM: "-----BEGIN PRIVATE KEY-----\nseedprivate\n-----END PRIVATE KEY-----\n", CreatedAt: at(63)}))
	}
	must(fed.AddFollow(ctx, federation.Follow{ID: "fo1", Target: "https://other.example", Actor: "https://other.example/ap/actor",
		Inbox: "https://other.example/ap/actor/inbox", Host: "other.example", State: federation.Accepted, CreatedAt: at(64), UpdatedAt: at(65)}))
	must(fed.AddFollower(ctx, federation.Follower{Local: "lab:" + lab.ID, Actor: "https://m.example/users/alice", Inbox: "https://m.example/inbox",
		Host: "m.example", ActivityID: "https://m.example/f/1", CreatedAt: at(66)}))
	must(fed.AddBlock(ctx, federation.Block{Host: "spam.example", CreatedAt: at(67)}))
	// Makes of ada's designs at another hub's lab: the visible one's, and the hidden one's
	// (which a public archive leaves out).
	for i, d := range []catalog.Design{d1, d3} {
		must(fed.AddRemoteMake(ctx, federation.RemoteMake{ID: fmt.Sprintf("https://other.example/jobs/%d", i+1), DesignID: d.ID, Version: 1,
			Host: "other.example", Lab: "https://other.example/labs/shed", LabName: "The shed", File: "parts/base.stl",
			EndedAt: at(68 + i), CreatedAt: at(70)}))
	}

	l := NewLedger(fab, -600)
	give(t, fab, l, fabrication.UserAccount("bob"), 500)
	must(l.Hold(ctx, fabrication.UserAccount("bob"), []fabrication.HoldLine{{Job: "j1", Minutes: 30}, {Job: "j2", Minutes: 30}}))
	_, err = l.Close(ctx, fabrication.Settlement{Job: "j2", Requester: fabrication.UserAccount("bob"), Lab: fabrication.LabAccount(lab.Slug), Made: 25, Charge: true})
	must(err)
	return seed
}

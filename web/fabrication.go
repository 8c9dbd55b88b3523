package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/agentapi"
	"github.com/fabcommons/fabcommons/storage"
)

func fabActor(c *gin.Context) fabrication.Actor {
	u, _ := currentUser(c)
	return fabrication.Actor{ID: u.ID, Handle: u.Handle, Admin: u.Admin}
}

func (s *Server) createLab(c *gin.Context) {
	var req fabrication.NewLab
	if !s.bindJSON(c, &req) {
		return
	}
	lab, err := s.labs.CreateLab(c.Request.Context(), fabActor(c), req)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"lab": lab})
}

func (s *Server) listLabs(c *gin.Context) {
	labs, err := s.labs.All(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"labs": labs})
}

func (s *Server) getLab(c *gin.Context) {
	v, err := s.scheduler.View(c.Request.Context(), fabActor(c), c.Param("slug"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (s *Server) setMember(c *gin.Context) {
	var req struct {
		Handle string `json:"handle"`
		Role   string `json:"role"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	m, err := s.labs.SetMember(c.Request.Context(), fabActor(c), c.Param("slug"), req.Handle, req.Role)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"member": m})
}

func (s *Server) addMachine(c *gin.Context) {
	var spec fabrication.MachineSpec
	if !s.bindJSON(c, &spec) {
		return
	}
	m, code, err := s.labs.AddMachine(c.Request.Context(), fabActor(c), c.Param("slug"), spec)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"machine": m, "enrollment_code": code})
}

func (s *Server) patchMachine(c *gin.Context) {
	var p fabrication.MachinePatch
	if !s.bindJSON(c, &p) {
		return
	}
	m, err := s.labs.PatchMachine(c.Request.Context(), fabActor(c), c.Param("id"), p)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"machine": m})
}

func (s *Server) createJoinToken(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	t, secret, err := s.labs.NewJoinToken(c.Request.Context(), fabActor(c), c.Param("slug"), req.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"join_token": gin.H{"id": t.ID, "name": t.Name, "prefix": t.Prefix, "created_at": t.CreatedAt, "secret": secret}})
}

func (s *Server) listJoinTokens(c *gin.Context) {
	ts, err := s.labs.JoinTokens(c.Request.Context(), fabActor(c), c.Param("slug"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"join_tokens": ts})
}

// revokeJoinToken: DELETE /api/v1/labs/{slug}/join-tokens/{id}[?retire_machines=true]
// -> 204, or 200 {retired} when the machines it registered were retired too.
func (s *Server) revokeJoinToken(c *gin.Context) {
	retire := c.Query("retire_machines") == "true"
	n, err := s.labs.RevokeJoinToken(c.Request.Context(), fabActor(c), c.Param("slug"), c.Param("id"), retire)
	if err != nil {
		s.fail(c, err)
		return
	}
	if retire {
		c.JSON(http.StatusOK, gin.H{"retired": n})
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) placeOrder(c *gin.Context) {
	var req fabrication.OrderRequest
	if !s.bindJSON(c, &req) {
		return
	}
	o, jobs, err := s.orders.PlaceOrder(c.Request.Context(), fabActor(c), req)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"order": o, "jobs": jobs})
}

func (s *Server) getOrder(c *gin.Context) {
	v, err := s.orders.Order(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (s *Server) getJob(c *gin.Context) {
	v, err := s.orders.Job(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"job": v})
}

// jobAction: POST /api/v1/jobs/{id}/{approve,reject,cancel,resolve,harvest}.
func (s *Server) jobAction(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req struct {
			Reason  string `json:"reason"`
			Outcome string `json:"outcome"`
		}
		if c.Request.ContentLength != 0 && !s.bindJSON(c, &req) {
			return
		}
		ctx, actor, id := c.Request.Context(), fabActor(c), c.Param("id")
		var j fabrication.Job
		var err error
		switch action {
		case "approve":
			j, err = s.orders.Approve(ctx, actor, id)
		case "reject":
			j, err = s.orders.Reject(ctx, actor, id, req.Reason)
		case "cancel":
			j, err = s.orders.Cancel(ctx, actor, id)
		case "resolve":
			j, err = s.orders.Resolve(ctx, actor, id, req.Outcome)
		case "harvest":
			j, err = s.orders.Harvest(ctx, actor, id)
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"job": j})
	}
}

// ---- the agent API ------------------------------------------------------------------

const ctxMachine = "machine"

// authenticateMachine admits requests bearing a machine token.
func (s *Server) authenticateMachine(c *gin.Context) {
	secret, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok {
		abort(c, http.StatusUnauthorized, "unauthenticated", "send the machine token as 'Authorization: Bearer <token>' (fabagent enroll gets one)")
		return
	}
	if m, ok := s.machineByToken(c, strings.TrimSpace(secret)); ok {
		c.Set(ctxMachine, m)
		c.Next()
	}
}

// machineByToken is the machine the token names, or false after answering 401 (the
// token is unknown or was replaced) or the store's error.
func (s *Server) machineByToken(c *gin.Context, token string) (fabrication.Machine, bool) {
	m, err := s.labs.MachineByToken(c.Request.Context(), token)
	if errors.Is(err, storage.ErrNotFound) {
		abort(c, http.StatusUnauthorized, "unauthenticated", "the machine token is unknown or was replaced; enrol the agent again")
		return m, false
	}
	if err != nil {
		s.fail(c, err)
		return m, false
	}
	return m, true
}

func machineOf(c *gin.Context) fabrication.Machine {
	m, _ := c.Get(ctxMachine)
	return m.(fabrication.Machine)
}

func (s *Server) agentEnroll(c *gin.Context) {
	var req agentapi.EnrollRequest
	if !s.bindJSON(c, &req) {
		return
	}
	s.joinMachine(c, http.StatusOK, func(ctx context.Context) (fabrication.Machine, string, error) {
		return s.labs.Enroll(ctx, req.Code)
	})
}

func (s *Server) agentRegister(c *gin.Context) {
	var req agentapi.RegisterRequest
	if !s.bindJSON(c, &req) {
		return
	}
	caps := req.Capabilities
	spec := fabrication.MachineSpec{Process: caps.Process, BuildVolume: fabrication.Volume{X: caps.BuildVolume[0], Y: caps.BuildVolume[1], Z: caps.BuildVolume[2]},
		Nozzle: caps.Nozzle, Materials: caps.Materials, Tags: caps.Tags, Driver: caps.Driver}
	s.joinMachine(c, http.StatusCreated, func(ctx context.Context) (fabrication.Machine, string, error) {
		return s.labs.Register(ctx, req.JoinToken, req.Name, spec)
	})
}

// joinMachine runs an enrolment (one-time code or join token) under the throttle that
// limits guessing, and answers with the machine's token.
func (s *Server) joinMachine(c *gin.Context, status int, join func(context.Context) (fabrication.Machine, string, error)) {
	client, now := clientOf(c), s.now()
	if wait := s.enrolls.Wait(client, now); wait > 0 {
		s.fail(c, &rateLimited{wait})
		return
	}
	m, token, err := join(c.Request.Context())
	if err != nil {
		if errors.Is(err, storage.ErrForbidden) { // a wrong guess, not a malformed request
			s.enrolls.Fail(client, now)
		}
		s.fail(c, err)
		return
	}
	lab, _ := s.labs.LabByID(c.Request.Context(), m.LabID)
	c.JSON(status, agentapi.Enrollment{MachineID: m.ID, Lab: lab.Slug, Token: token, Approved: m.Approved})
}

// agentPoll is the long-poll: it answers at once when there is work (or jobs to
// drop), and otherwise waits for the feed to say work may have appeared in the lab,
// re-checking the database every few seconds (work queued on another hub replica
// reaches this one that way), until the wait ends with 204. A hub draining (Drain)
// ends the wait at once, with the same 204.
func (s *Server) agentPoll(c *gin.Context) {
	var req agentapi.PollRequest
	if !s.bindJSON(c, &req) {
		return
	}
	wait := s.cfg.PollWait
	if req.WaitSeconds > 0 && time.Duration(req.WaitSeconds)*time.Second < wait {
		wait = time.Duration(req.WaitSeconds) * time.Second
	}
	ctx := c.Request.Context()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	m := machineOf(c)
	for first := true; ; first = false {
		if !first {
			// As it is now (approved? in maintenance?), and is the token still good?
			fresh, ok := s.machineByToken(c, strings.TrimSpace(strings.TrimPrefix(c.GetHeader("Authorization"), "Bearer ")))
			if !ok {
				return
			}
			m = fresh
			req.Jobs = nil // reconciled on the first pass
		}
		poll := s.scheduler.Poll
		if !first {
			poll = s.scheduler.PollAgain
		}
		resp, busy, err := poll(ctx, m, req)
		if err != nil {
			s.fail(c, err)
			return
		}
		if resp.Job != nil || len(resp.Drop) > 0 {
			c.JSON(http.StatusOK, resp)
			return
		}
		if busy || wait <= 0 || s.isDraining() {
			c.Status(http.StatusNoContent)
			return
		}
		woken, stop := s.feed.WaitForWork(m.LabID)
		recheck := time.NewTimer(s.cfg.PollRecheck + rand.N(s.cfg.PollRecheck/2+1))
		select {
		case <-woken:
		case <-recheck.C:
		case <-deadline.C:
			stop()
			recheck.Stop()
			c.Status(http.StatusNoContent)
			return
		case <-s.draining:
			stop()
			recheck.Stop()
			c.Status(http.StatusNoContent)
			return
		case <-ctx.Done():
			stop()
			recheck.Stop()
			return
		}
		stop()
		recheck.Stop()
	}
}

func (s *Server) agentEvent(c *gin.Context) {
	var req agentapi.EventRequest
	if !s.bindJSON(c, &req) {
		return
	}
	resp, err := s.scheduler.Event(c.Request.Context(), machineOf(c), c.Param("id"), req)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, resp)
}

// agentFile serves a job's file to the machine holding its live lease (agentapi.HeaderLease).
func (s *Server) agentFile(c *gin.Context) {
	j, err := s.scheduler.FileFor(c.Request.Context(), machineOf(c), c.Param("id"), c.GetHeader(agentapi.HeaderLease))
	if err != nil {
		s.fail(c, err)
		return
	}
	h := c.Writer.Header()
	h.Set("ETag", `"`+j.SHA256+`"`)
	h.Set("Content-Type", catalog.TypeOf(j.File).Media)
	h.Set("X-Content-Type-Options", "nosniff")
	s.serveBlob(c, j.SHA256, j.Size, j.CreatedAt)
}

// ---- live changes -------------------------------------------------------------------

// events: GET /api/v1/events?lab=&order= streams job and machine changes as
// server-sent events. Without filters it streams everything (anyone may watch the whole).
// The stream ends when the client goes or the hub drains (Drain); a browser then
// reconnects after the retry the stream asked for.
func (s *Server) events(c *gin.Context) {
	release, ok := s.streams.open(clientOf(c))
	if !ok {
		c.Header("Retry-After", "10")
		abort(c, http.StatusServiceUnavailable, "busy", "too many live views open; try again shortly")
		return
	}
	defer release()
	labID, orderID := "", c.Query("order")
	if slug := c.Query("lab"); slug != "" {
		lab, err := s.labs.Lab(c.Request.Context(), slug)
		if err != nil {
			s.fail(c, err)
			return
		}
		labID = lab.ID
	}
	changes, cancel := s.feed.Subscribe(func(ch fabrication.Change) bool {
		return (labID == "" || ch.LabID == labID) && (orderID == "" || ch.OrderID == orderID)
	})
	defer cancel()
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	fmt.Fprint(c.Writer, "retry: 3000\n: connected\n\n")
	c.Writer.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-c.Request.Context().Done():
			return
		case <-s.draining:
			return
		case <-keepalive.C:
			fmt.Fprint(c.Writer, ": keep-alive\n\n")
		case ch := <-changes: // shared with every other stream: read, never write
			b, _ := json.Marshal(ch)
			fmt.Fprintf(c.Writer, "event: %s\ndata: %s\n\n", ch.Kind, b)
		}
		c.Writer.Flush()
	}
}

// rotateToken: POST /api/v1/machines/{id}/token -> {machine, enrollment_code}; the old
// token stops at once.
func (s *Server) rotateToken(c *gin.Context) {
	m, code, err := s.labs.RotateToken(c.Request.Context(), fabActor(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"machine": m, "enrollment_code": code})
}

// retireMachine: POST /api/v1/machines/{id}/retire -> {machine}.
func (s *Server) retireMachine(c *gin.Context) {
	m, err := s.labs.Retire(c.Request.Context(), fabActor(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"machine": m})
}

// removeMember: DELETE /api/v1/labs/{slug}/members/{handle} -> 204.
func (s *Server) removeMember(c *gin.Context) {
	if err := s.labs.RemoveMember(c.Request.Context(), fabActor(c), c.Param("slug"), c.Param("handle")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

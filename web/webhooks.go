package web

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
	"github.com/fabcommons/fabcommons/fabrication/webhook"
)

// recentDeliveries is how many deliveries of a hook its owner is shown.
const recentDeliveries = 20

func hookActor(c *gin.Context) webhook.Actor {
	u, _ := currentUser(c)
	return webhook.Actor{ID: u.ID, Admin: u.Admin}
}

// createWebhook: POST /api/v1/webhooks {url, events, lab?} -> 201 {webhook, secret}.
// The secret is in this answer only.
func (s *Server) createWebhook(c *gin.Context) {
	var req webhook.NewHook
	if !s.bindJSON(c, &req) {
		return
	}
	h, secret, err := s.webhooks.Create(c.Request.Context(), hookActor(c), req)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"webhook": h, "secret": secret})
}

// listWebhooks: GET /api/v1/webhooks -> {webhooks}: the caller's hooks, without secrets.
func (s *Server) listWebhooks(c *gin.Context) {
	hooks, err := s.webhooks.Hooks(c.Request.Context(), hookActor(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	if hooks == nil {
		hooks = []webhook.Hook{}
	}
	c.JSON(http.StatusOK, gin.H{"webhooks": hooks})
}

// deleteWebhook: DELETE /api/v1/webhooks/{id} -> 204; nothing more is sent to it.
func (s *Server) deleteWebhook(c *gin.Context) {
	if err := s.webhooks.Delete(c.Request.Context(), hookActor(c), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// testWebhook: POST /api/v1/webhooks/{id}/test -> 202 {delivery}: a ping is queued; its
// outcome shows in the hook's deliveries once tried (the request does not wait for it).
func (s *Server) testWebhook(c *gin.Context) {
	d, err := s.webhooks.SendTest(c.Request.Context(), hookActor(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"delivery": d})
}

// webhookDeliveries: GET /api/v1/webhooks/{id}/deliveries -> {deliveries}: the latest,
// newest first, with their outcomes; to the hook's owner only.
func (s *Server) webhookDeliveries(c *gin.Context) {
	ds, err := s.webhooks.Deliveries(c.Request.Context(), hookActor(c), c.Param("id"), recentDeliveries)
	if err != nil {
		s.fail(c, err)
		return
	}
	if ds == nil {
		ds = []webhook.Delivery{}
	}
	c.JSON(http.StatusOK, gin.H{"deliveries": ds})
}

// notifyReported tells the design's owner's hooks, and the maintainers' hooks for the
// whole hub, that someone reported the design.
// The reporter is not named.
func (s *Server) notifyReported(ctx context.Context, slug, reason string) {
	if s.webhooks == nil {
		return
	}
	d, _, err := s.catalog.Design(ctx, catalog.Actor{Admin: true}, slug)
	if err != nil {
		s.log.Warn("design reported: no webhook notice", "design", slug, "err", err)
		return
	}
	s.webhooks.Notify(webhook.Notice{Event: webhook.DesignReported, OwnerID: d.OwnerID, Maintainers: true,
		Data: gin.H{"design": gin.H{"slug": d.Slug, "title": d.Title, "owner": d.Owner}, "reason": reason}})
}

// noticeOf is the webhook notice a change of fabrication's makes, if any: a job that
// reached a state someone must act on or hear of, or a machine gone offline. The lab's
// hooks hear of all; the requester's own hooks of their jobs' outcomes.
func noticeOf(c fabrication.Change) (webhook.Notice, bool) {
	switch {
	case c.Job != nil:
		j := *c.Job
		j.Events = nil // the job's history is at /api/v1/jobs/{id}
		n := webhook.Notice{LabID: j.LabID, OwnerID: j.RequesterID, Data: gin.H{"job": j}}
		switch j.State {
		case fabrication.JobPendingApproval:
			n.Event, n.OwnerID = webhook.JobAwaitingApproval, "" // the requester knows; the operators must act
		case fabrication.JobFailed:
			n.Event = webhook.JobFailed
		case fabrication.JobAwaitingHarvest:
			n.Event = webhook.JobAwaitingHarvest
		case fabrication.JobDone:
			n.Event = webhook.JobDone
		case fabrication.JobRejected:
			n.Event = webhook.OrderRefused
		default:
			return webhook.Notice{}, false
		}
		return n, true
	case c.Machine != nil && c.Machine.State == fabrication.MachineOffline:
		m := *c.Machine
		m.TokenHash = ""
		return webhook.Notice{Event: webhook.MachineOffline, LabID: m.LabID, Data: gin.H{"machine": m}}, true
	}
	return webhook.Notice{}, false
}

// managedLabs shows fabrication's labs to the webhook service.
type managedLabs struct{ labs *fabrication.Labs }

func (m managedLabs) ManagedLab(ctx context.Context, actor webhook.Actor, slug string) (string, error) {
	lab, err := m.labs.Managed(ctx, fabrication.Actor{ID: actor.ID, Admin: actor.Admin}, slug)
	return lab.ID, err
}

package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fabcommons/fabcommons/storage"
)

// SetHidden hides or shows a design; only admins may. It returns the design.
func (s *Service) SetHidden(ctx context.Context, actor Actor, slug string, hidden bool) (Design, error) {
	if !actor.Admin {
		return Design{}, fmt.Errorf("only maintainers hide designs: %w", storage.ErrForbidden)
	}
	d, err := s.store.DesignBySlug(ctx, slug)
	if err != nil {
		return Design{}, fmt.Errorf("design %s: %w", slug, err)
	}
	if err := s.store.SetHidden(ctx, d.ID, hidden, s.now().UTC()); err != nil {
		return Design{}, err
	}
	d.Hidden = hidden
	if hidden { // hiding settles its reports
		return d, s.store.ClearFlags(ctx, d.ID)
	}
	return d, nil
}

// SetFeatured features a design on the home page; only admins may.
func (s *Service) SetFeatured(ctx context.Context, actor Actor, slug string, featured bool) error {
	if !actor.Admin {
		return fmt.Errorf("only maintainers feature designs: %w", storage.ErrForbidden)
	}
	d, err := s.store.DesignBySlug(ctx, slug)
	if err != nil {
		return fmt.Errorf("design %s: %w", slug, err)
	}
	return s.store.SetFeatured(ctx, d.ID, featured)
}

// Flag records actor's report on a design for the maintainers. One per person and
// design until a maintainer deals with it (storage.ErrConflict for a repeat).
func (s *Service) Flag(ctx context.Context, actor Actor, slug, reason string) error {
	if actor.ID == "" {
		return fmt.Errorf("log in to report a design: %w", storage.ErrForbidden)
	}
	reason = strings.TrimSpace(reason)
	if err := checkText("reason", reason, 500, true); err != nil {
		return err
	}
	d, err := s.store.DesignBySlug(ctx, slug)
	if err != nil {
		return fmt.Errorf("design %s: %w", slug, err)
	}
	err = s.store.AddFlag(ctx, Flag{DesignID: d.ID, UserID: actor.ID, Handle: actor.Handle, Reason: reason, CreatedAt: s.now().UTC()})
	if errors.Is(err, storage.ErrConflict) {
		return fmt.Errorf("you already reported %s; a maintainer will look at it: %w", slug, err)
	}
	return err
}

// FlaggedDesign is a design with its open reports.
type FlaggedDesign struct {
	Design Design `json:"design"`
	Flags  []Flag `json:"flags"`
}

// Flagged lists the designs with open reports, most recently reported first; only
// maintainers may see who reported what.
func (s *Service) Flagged(ctx context.Context, actor Actor) ([]FlaggedDesign, error) {
	if !actor.Admin {
		return nil, fmt.Errorf("only maintainers see reports: %w", storage.ErrForbidden)
	}
	flags, err := s.store.Flags(ctx, 500)
	if err != nil {
		return nil, err
	}
	out := []FlaggedDesign{}
	at := map[string]int{}
	for _, f := range flags {
		i, ok := at[f.DesignID]
		if !ok {
			d, err := s.store.DesignByID(ctx, f.DesignID)
			if err != nil {
				return nil, err
			}
			i = len(out)
			at[f.DesignID] = i
			out = append(out, FlaggedDesign{Design: d})
		}
		out[i].Flags = append(out[i].Flags, f)
	}
	return out, nil
}

// DismissFlags closes the reports on a design without hiding it; only maintainers may.
func (s *Service) DismissFlags(ctx context.Context, actor Actor, slug string) error {
	if !actor.Admin {
		return fmt.Errorf("only maintainers close reports: %w", storage.ErrForbidden)
	}
	d, err := s.store.DesignBySlug(ctx, slug)
	if err != nil {
		return fmt.Errorf("design %s: %w", slug, err)
	}
	return s.store.ClearFlags(ctx, d.ID)
}

// Hidden says whether the design with id is hidden.
func (s *Service) Hidden(ctx context.Context, id string) (bool, error) {
	d, err := s.store.DesignByID(ctx, id)
	if err != nil {
		return false, fmt.Errorf("design %s: %w", id, err)
	}
	return d.Hidden, nil
}

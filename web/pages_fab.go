package web

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/catalog"
	"github.com/fabcommons/fabcommons/fabrication"
)

// fitRow says, for one machine, which of the chosen files it can make and why not.
type fitRow struct {
	Machine fabrication.Machine
	Fits    []fitCell
}

type fitCell struct {
	File string
	OK   bool
	Why  string
}

// makePage: choose a lab, files (or the BOM kit), quantity, material and colour, and see
// which of the lab's machines fit each part and why the others do not.
func (s *Server) makePage(c *gin.Context) {
	s.renderMake(c, http.StatusOK, "", "")
}

func (s *Server) renderMake(c *gin.Context, status int, errMsg, errField string) {
	ctx, slug := c.Request.Context(), c.Param("slug")
	d, v, err := s.catalog.Design(ctx, actorOf(c), slug)
	if err != nil {
		s.fail(c, err)
		return
	}
	labs, err := s.labs.All(ctx)
	if err != nil {
		s.fail(c, err)
		return
	}
	form := func(k, def string) string {
		if x := c.PostForm(k); x != "" {
			return x
		}
		if x := c.Query(k); x != "" {
			return x
		}
		return def
	}
	if d.Remote() && v != nil {
		// Its meshes are fetched and analysed now, so the form can offer them and say
		// which machines they fit; an origin that fails is said on the page.
		ready, err := s.readyToMake(ctx, d, *v)
		switch {
		case err == nil:
			v = &ready
		case errMsg == "":
			code, e := s.classify(c, err)
			if code == 0 {
				return
			}
			status, errMsg = code, e.Message
		}
	}
	material, process := form("material", "PLA"), form("process", fabrication.ProcessFDM)
	data := gin.H{"D": d, "V": v, "Labs": labs, "Lab": form("lab", ""), "Material": material, "Colour": form("colour", ""),
		"Process": process, "Quantity": form("quantity", "1"), "Error": errMsg, "Field": errField}
	if slug := form("lab", ""); slug != "" && v != nil {
		lab, err := s.labs.Lab(ctx, slug)
		if err != nil {
			s.fail(c, err)
			return
		}
		machines, err := s.labs.Machines(ctx, lab.ID)
		if err != nil {
			s.fail(c, err)
			return
		}
		var rows []fitRow
		for _, m := range machines {
			row := fitRow{Machine: m}
			for _, f := range v.Files {
				if f.Mesh == nil {
					continue
				}
				j := fabrication.Job{Process: process, Material: material,
					BBox: fabrication.Volume{X: f.Mesh.BBox.Size[0], Y: f.Mesh.BBox.Size[1], Z: f.Mesh.BBox.Size[2]}}
				ok, why := fabrication.Fits(j, m)
				row.Fits = append(row.Fits, fitCell{File: f.Path, OK: ok, Why: why})
			}
			rows = append(rows, row)
		}
		data["Fit"], data["ChosenLab"] = rows, lab
		q, err := s.orders.Quote(ctx, fabActor(c), fabrication.OrderRequest{Design: d.Slug, Lab: lab.Slug, Process: process, Material: material})
		if err == nil {
			data["Quote"] = q
		} // else the order form says what is wrong when it is sent
	}
	s.render(c, status, "make", "Make "+d.Title, data)
}

func (s *Server) makePost(c *gin.Context) {
	qty, err := strconv.Atoi(c.PostForm("quantity"))
	if err != nil {
		s.renderMake(c, http.StatusUnprocessableEntity, "quantity: want a whole number", "quantity")
		return
	}
	req := fabrication.OrderRequest{Design: c.Param("slug"), Lab: c.PostForm("lab"), Material: c.PostForm("material"),
		Colour: c.PostForm("colour"), Process: c.PostForm("process"), Quantity: qty, Files: c.PostFormArray("files")}
	if c.PostForm("kit") == "bom" {
		req.Files = nil // the BOM's printed lines
	}
	o, _, err := s.orders.PlaceOrder(c.Request.Context(), fabActor(c), req)
	if err != nil {
		status, e := s.classify(c, err)
		if status == 0 {
			return
		}
		s.renderMake(c, status, e.Message, e.Field)
		return
	}
	c.Redirect(http.StatusSeeOther, "/orders/"+url.PathEscape(o.ID))
}

func (s *Server) labsPage(c *gin.Context) {
	labs, err := s.labs.All(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	s.render(c, http.StatusOK, "labs", "Labs", gin.H{"Labs": labs})
}

func (s *Server) labPage(c *gin.Context) {
	v, err := s.scheduler.View(c.Request.Context(), fabActor(c), c.Param("slug"))
	if err != nil {
		s.fail(c, err)
		return
	}
	operator := v.Role == fabrication.RoleOwner || v.Role == fabrication.RoleOperator
	data := gin.H{"L": v, "Operator": operator, "Owner": v.Role == fabrication.RoleOwner || fabActor(c).Admin,
		"Rate": cmp.Or(v.Lab.Policy.MinutesPerCm3, fabrication.DefaultMinutesPerCm3), "DefaultRate": fabrication.DefaultMinutesPerCm3}
	if !s.ledgerOf(c, fabrication.LabAccount(v.Lab.Slug), data) {
		return
	}
	if v.Role == fabrication.RoleOwner {
		tokens, err := s.labs.JoinTokens(c.Request.Context(), fabActor(c), v.Lab.Slug)
		if err != nil {
			s.fail(c, err)
			return
		}
		data["JoinTokens"] = tokens
	}
	s.render(c, http.StatusOK, "lab", v.Lab.Name, data)
}

func (s *Server) orderPage(c *gin.Context) {
	v, err := s.orders.Order(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	lab, err := s.labs.LabByID(c.Request.Context(), v.Order.LabID)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.render(c, http.StatusOK, "order", "Order of "+v.Order.DesignTitle, gin.H{"O": v, "Lab": lab, "Machines": s.machineNames(c, lab.ID)})
}

func (s *Server) jobPage(c *gin.Context) {
	v, err := s.orders.Job(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	lab, err := s.labs.LabByID(c.Request.Context(), v.LabID)
	if err != nil {
		s.fail(c, err)
		return
	}
	data := gin.H{"J": v, "Lab": lab, "Machines": s.machineNames(c, lab.ID)}
	if _, ok := currentUser(c); ok {
		// The form to add a photo, for the lab's operators once the print has ended.
		data["CanPhoto"] = s.orders.CheckPhoto(c.Request.Context(), fabActor(c), v.ID) == nil
	}
	if e, ok, err := s.ledger.JobEntry(c.Request.Context(), v.ID); err != nil {
		s.fail(c, err)
		return
	} else if ok {
		data["Ledger"] = e
	}
	s.render(c, http.StatusOK, "job", "Job "+v.File, data)
}

// machineNames maps a lab's machine ids to names, for its order and job pages.
func (s *Server) machineNames(c *gin.Context, labID string) map[string]string {
	names := map[string]string{}
	machines, _ := s.labs.Machines(c.Request.Context(), labID) // without them the pages show no machine names
	for _, m := range machines {
		names[m.ID] = m.Name
	}
	return names
}

// lineageGraph is a design's lineage laid out for an SVG: one column per generation,
// ancestors to the left, descendants to the right.
type lineageGraph struct {
	Width, Height int
	Nodes         []lineageNode
	Edges         []lineageEdge
	Truncated     bool
}

type lineageNode struct {
	catalog.Node
	X, Y    int
	Current bool
	Label   string
}

type lineageEdge struct{ X1, Y1, X2, Y2 int }

const (
	lineageColW, lineageRowH = 200, 56
	lineageBoxW, lineageBoxH = 170, 40
)

func layoutLineage(l catalog.Lineage) lineageGraph {
	// An ancestor on another hub, not copied here, has no slug: its URL is its key, as
	// in its children's Parents.
	l.Ancestors = slices.Clone(l.Ancestors)
	for i, n := range l.Ancestors {
		if n.Slug == "" && n.URL != "" {
			l.Ancestors[i].Slug = n.URL
		}
	}
	level := map[string]int{l.Design.Slug: 0}
	nodes := map[string]catalog.Node{l.Design.Slug: l.Design}
	for _, n := range l.Ancestors {
		nodes[n.Slug] = n
	}
	for _, n := range l.Descendants {
		nodes[n.Slug] = n
	}
	// Ancestors: walk parents from the design; descendants: walk children. Both lists
	// come breadth first, so one pass each settles the generations.
	queue := []string{l.Design.Slug}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, p := range nodes[cur].Parents {
			if _, seen := level[p]; !seen {
				if _, known := nodes[p]; known {
					level[p] = level[cur] - 1
					queue = append(queue, p)
				}
			}
		}
	}
	for _, n := range l.Descendants {
		best, found := 0, false
		for _, p := range n.Parents {
			if lv, ok := level[p]; ok && (!found || lv+1 > best) {
				best, found = lv+1, true
			}
		}
		if _, seen := level[n.Slug]; !seen && found {
			level[n.Slug] = max(best, 1)
		}
	}
	minL, maxL := 0, 0
	for _, lv := range level {
		minL, maxL = min(minL, lv), max(maxL, lv)
	}
	cols := map[int][]string{}
	order := append(append([]catalog.Node{}, l.Ancestors...), l.Design)
	order = append(order, l.Descendants...)
	for _, n := range order {
		if lv, ok := level[n.Slug]; ok && !slices.Contains(cols[lv], n.Slug) {
			cols[lv] = append(cols[lv], n.Slug)
		}
	}
	g := lineageGraph{Truncated: l.Truncated}
	pos := map[string][2]int{}
	rows := 1
	for lv := minL; lv <= maxL; lv++ {
		for i, slug := range cols[lv] {
			x, y := 10+(lv-minL)*lineageColW, 10+i*lineageRowH
			pos[slug] = [2]int{x, y}
			n := nodes[slug]
			label := n.Title
			if n.Hidden {
				label = "(hidden) " + label
			}
			if r := []rune(label); len(r) > 24 {
				label = string(r[:23]) + "…"
			}
			g.Nodes = append(g.Nodes, lineageNode{Node: n, X: x, Y: y, Current: slug == l.Design.Slug, Label: label})
		}
		rows = max(rows, len(cols[lv]))
	}
	for _, n := range g.Nodes {
		for _, p := range n.Parents {
			if pp, ok := pos[p]; ok {
				g.Edges = append(g.Edges, lineageEdge{X1: pp[0] + lineageBoxW, Y1: pp[1] + lineageBoxH/2, X2: n.X, Y2: n.Y + lineageBoxH/2})
			}
		}
	}
	g.Width = 20 + (maxL-minL)*lineageColW + lineageBoxW
	g.Height = 20 + (rows-1)*lineageRowH + lineageBoxH
	return g
}

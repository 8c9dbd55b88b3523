package web

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/fabcommons/fabcommons/fabrication"
)

// The machine-time ledger (fabrication/ledger.go): public to read, as the rest of the
// hub is; moving minutes needs the account's owner, reversing and floors a site admin.

func (s *Server) ledgerAccount(c *gin.Context) {
	a, err := s.ledger.Account(c.Request.Context(), c.Param("account"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, a)
}

// seqParam reads a non-negative entry number from the query (0 when absent).
func seqParam(c *gin.Context, name string) (int64, bool) {
	v := c.Query(name)
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		abort(c, http.StatusUnprocessableEntity, "invalid", name+" must be an entry number from an earlier page")
		return 0, false
	}
	return n, true
}

// listTransfers: GET /api/v1/ledger/transfers?account=&cursor= -> the moves, newest
// first, 50 a page; cursor is the next_cursor of the page before.
func (s *Server) listTransfers(c *gin.Context) {
	s.ledgerPage(c, "cursor", "transfers", "next_cursor", 50, func(from int64) ([]fabrication.LedgerEntry, error) {
		return s.ledger.Transfers(c.Request.Context(), c.Query("account"), from, 50)
	})
}

// ledgerEntries: GET /api/v1/ledger/entries?after= -> the whole chain in order, 500 a
// page, for anyone who checks it (docs/ledger.md).
func (s *Server) ledgerEntries(c *gin.Context) {
	s.ledgerPage(c, "after", "entries", "next_after", 500, func(from int64) ([]fabrication.LedgerEntry, error) {
		return s.ledger.Entries(c.Request.Context(), from, 500)
	})
}

// ledgerPage answers one page of entries from the entry number in the query parameter
// param, with the number to ask for next (empty on the last page).
func (s *Server) ledgerPage(c *gin.Context, param, field, nextField string, size int, fetch func(from int64) ([]fabrication.LedgerEntry, error)) {
	from, ok := seqParam(c, param)
	if !ok {
		return
	}
	page, err := fetch(from)
	if err != nil {
		s.fail(c, err)
		return
	}
	next := ""
	if len(page) == size {
		next = strconv.FormatInt(page[len(page)-1].Seq, 10)
	}
	c.JSON(http.StatusOK, gin.H{field: page, nextField: next})
}

func (s *Server) verifyLedger(c *gin.Context) {
	v, err := s.ledger.Verify(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// transfer: POST /api/v1/ledger/transfers with an Idempotency-Key header: 201 with the
// transfer, or 200 with the same one when the key was used before.
func (s *Server) transfer(c *gin.Context) {
	var req fabrication.TransferRequest
	if !s.bindJSON(c, &req) {
		return
	}
	e, created, err := s.ledger.Transfer(c.Request.Context(), fabActor(c), req, c.GetHeader("Idempotency-Key"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(createdOr200(created), e)
}

func createdOr200(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}

func (s *Server) reverseTransfer(c *gin.Context) {
	var req struct {
		Memo string `json:"memo"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	seq, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || seq < 1 {
		abort(c, http.StatusNotFound, "not_found", "no transfer "+c.Param("id"))
		return
	}
	e, created, err := s.ledger.Reverse(c.Request.Context(), fabActor(c), seq, req.Memo)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(createdOr200(created), e)
}

func (s *Server) setFloor(c *gin.Context) {
	var req struct {
		Floor *int64 `json:"floor"`
	}
	if !s.bindJSON(c, &req) {
		return
	}
	if req.Floor == nil {
		abort(c, http.StatusUnprocessableEntity, "invalid", "floor: give the account's floor in machine-minutes (0 or below)")
		return
	}
	e, err := s.ledger.SetFloor(c.Request.Context(), fabActor(c), c.Param("account"), *req.Floor)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, e)
}

// setPolicy: PUT /api/v1/labs/{slug}/policy, the whole policy -> the lab.
func (s *Server) setPolicy(c *gin.Context) {
	var p fabrication.Policy
	if !s.bindJSON(c, &p) {
		return
	}
	lab, err := s.labs.SetPolicy(c.Request.Context(), fabActor(c), c.Param("slug"), p)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, lab)
}

// quoteOrder: POST /api/v1/orders/quote, the body of an order -> what it would likely
// cost and what the caller has, without placing it.
func (s *Server) quoteOrder(c *gin.Context) {
	var req fabrication.OrderRequest
	if !s.bindJSON(c, &req) {
		return
	}
	q, err := s.orders.Quote(c.Request.Context(), fabActor(c), req)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, q)
}

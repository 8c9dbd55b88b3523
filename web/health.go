package web

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// healthz says the process is alive; it checks nothing else.
func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyz says whether the hub can serve: every store answers within two seconds.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	names := make([]string, 0, len(s.ready))
	for name := range s.ready {
		names = append(names, name)
	}
	sort.Strings(names)
	checks := gin.H{}
	ok := true
	for _, name := range names {
		if err := s.ready[name].Ping(ctx); err != nil {
			s.log.Warn("readiness check failed", "dependency", name, "err", err)
			checks[name] = "unavailable"
			ok = false
			continue
		}
		checks[name] = "ok"
	}
	if !ok {
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{
			"error":  apiError{Code: "not_ready", Message: "a dependency is unavailable"},
			"checks": checks,
		})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": checks})
}

func (s *Server) initMetrics() {
	s.metrics = prometheus.NewRegistry()
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fabhub_http_requests_total", Help: "HTTP requests by method, route and status.",
	}, []string{"method", "route", "status"})
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "fabhub_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
		Buckets: prometheus.DefBuckets,
	}, []string{"method", "route"})
	s.metrics.MustRegister(s.requests, s.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// observe counts requests by route template (not raw path, which would let any
// client create unbounded series).
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	// Labels come from fixed sets only (the route table, the methods HTTP defines, the
	// statuses the hub answers): a label taken from the request as sent would let anyone
	// grow the metrics without end.
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	method := c.Request.Method
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other"
	}
	s.requests.WithLabelValues(method, route, strconv.Itoa(c.Writer.Status())).Inc()
	s.latency.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
}

func (s *Server) metricsHandler() gin.HandlerFunc {
	h := promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{})
	return gin.WrapH(h)
}

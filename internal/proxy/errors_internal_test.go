package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestUpstreamError_StatusByCause(t *testing.T) {
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tests := []struct {
		name   string
		err    error
		status int
		detail string
	}{
		{"refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, http.StatusBadGateway, "upstream-unreachable"},
		{"fetch deadline", fmt.Errorf("fetch: %w", context.DeadlineExceeded), http.StatusGatewayTimeout, "upstream-timed-out"},
		{"read timeout", &net.OpError{Op: "read", Err: timeoutErr{}}, http.StatusGatewayTimeout, "upstream-timed-out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.upstreamError(w, httptest.NewRequest(http.MethodGet, "/x", nil), tt.err)
			if w.Code != tt.status || w.Header().Get("Cache-Status") != "fleetcache; detail="+tt.detail {
				t.Errorf("got %d %q, want %d with detail %s", w.Code, w.Header().Get("Cache-Status"), tt.status, tt.detail)
			}
		})
	}
}

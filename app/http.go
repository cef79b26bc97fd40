package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ServeHTTP serves a stock net/http server on ln until ctx is done: GET /
// answers "hello from <stack> <path>". It shows that an unmodified Go server
// runs on any stack's net.Listener.
func ServeHTTP(ctx context.Context, ln net.Listener, stack string) error {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from %s %s\n", stack, r.URL.Path)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

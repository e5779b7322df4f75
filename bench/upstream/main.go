// Command upstream is the app behind Caddy in bench/run: a minimal HTTP
// server that answers every request with a short text naming the identity
// the sidecar sent (or "anonymous" behind bare reverse_proxy), so that the
// load comparison measures the proxy, not the app.
//
//	go run ./bench/upstream -listen 127.0.0.1:18080
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18080", "address to listen on (loopback only)")
	flag.Parse()

	srv := &http.Server{
		Addr:              *listen,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			name := r.Header.Get("X-Auth-Username")
			if name == "" {
				name = "anonymous"
			}
			body := "Hello, " + name + "! You asked for " + r.Method + " " + r.URL.Path + ".\n"
			h := w.Header()
			h["Content-Type"] = []string{"text/plain; charset=utf-8"}
			h["Content-Length"] = []string{strconv.Itoa(len(body))}
			w.Write([]byte(body))
		}),
	}
	log.Fatal(srv.ListenAndServe())
}

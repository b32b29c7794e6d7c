// Command pstest serves Google's in-memory Pub/Sub fake (cloud.google.com/go/pubsub/pstest, from
// Debian's golang-google-cloud-dev) on a fixed host:port, so the official clients can reach it
// through PUBSUB_EMULATOR_HOST. Built offline by local/standins.py (GOPATH mode, /usr/share/gocode).
//
//	pstest -host 127.0.0.1 -port 8602   (or PSTEST_HOST / PSTEST_PORT)
//
// Prints "pstest ready on HOST:PORT" once listening; stops on SIGINT/SIGTERM.
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"cloud.google.com/go/pubsub/pstest"
	pb "google.golang.org/genproto/googleapis/pubsub/v1"
	"google.golang.org/grpc"
)

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func main() {
	// The global logger is only used by pstest's internal helper server, which we close at once
	// (it would report "server has been stopped"). Our status lines go to stdout, errors to stderr.
	log.SetOutput(io.Discard)
	logger := log.New(os.Stdout, "", 0)
	failer := log.New(os.Stderr, "", 0)

	host := flag.String("host", envOr("PSTEST_HOST", "127.0.0.1"), "address to listen on")
	port := flag.Int("port", 0, "port to listen on (default $PSTEST_PORT or 8085)")
	flag.Parse()
	if *port == 0 {
		p, err := strconv.Atoi(envOr("PSTEST_PORT", "8085"))
		if err != nil {
			failer.Fatalf("pstest: bad PSTEST_PORT: %v", err)
		}
		*port = p
	}
	// This pstest version only listens on a random port; keep its state (GServer) and serve it
	// from our own gRPC server on the requested address, after closing the random-port one.
	fake := pstest.NewServer()
	if err := fake.Close(); err != nil {
		failer.Fatalf("pstest: %v", err)
	}
	addr := net.JoinHostPort(*host, strconv.Itoa(*port))
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		failer.Fatalf("pstest: listen %s: %v", addr, err)
	}
	gsrv := grpc.NewServer()
	pb.RegisterPublisherServer(gsrv, &fake.GServer)
	pb.RegisterSubscriberServer(gsrv, &fake.GServer)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		logger.Printf("pstest: %v, stopping", s)
		gsrv.Stop() // streaming pulls never end on their own; don't wait for them
	}()

	logger.Printf("pstest ready on %s", lis.Addr())
	if err := gsrv.Serve(lis); err != nil {
		failer.Fatalf("pstest: serve: %v", err)
	}
}

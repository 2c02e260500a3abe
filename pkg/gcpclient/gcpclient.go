// Package gcpclient holds the options the pipeline's binaries give Google's Pub/Sub and
// Firestore clients, on top of what the clients read themselves (Application Default
// Credentials, PUBSUB_EMULATOR_HOST, FIRESTORE_EMULATOR_HOST).
package gcpclient

import (
	"time"

	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// ReconnectBackoff is how gRPC spaces its attempts to reconnect after a connection was lost
// or refused. gRPC's default (1 s, growing 1.6 times per attempt up to 120 s) means that
// after an outage of a few tens of seconds the next attempt comes up to a minute or two after
// the service is back, and every call waits for it: measured on the Firestore emulator, 8 to
// 23 s without a single write after a 14-16 s restart. Capped at 2 s, a client is back within
// about 2 s of its service.
var ReconnectBackoff = backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second}

// Options are the client options of the binaries' Pub/Sub and Firestore clients.
func Options() []option.ClientOption {
	return []option.ClientOption{
		option.WithGRPCDialOption(grpc.WithConnectParams(grpc.ConnectParams{Backoff: ReconnectBackoff, MinConnectTimeout: 10 * time.Second})),
	}
}

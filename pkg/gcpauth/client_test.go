package gcpauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	firestorepb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// A TLS gRPC server standing in for Pub/Sub and Firestore; it records the authorization
// header of every call.
type grpcStandIn struct {
	pubsubpb.UnimplementedPublisherServer
	firestorepb.UnimplementedFirestoreServer

	mu    sync.Mutex
	auths []string
}

func (g *grpcStandIn) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.auths = append(g.auths, md.Get("authorization")...)
}

func (g *grpcStandIn) Publish(ctx context.Context, req *pubsubpb.PublishRequest) (*pubsubpb.PublishResponse, error) {
	g.record(ctx)
	ids := make([]string, len(req.Messages))
	for i := range ids {
		ids[i] = "m1"
	}
	return &pubsubpb.PublishResponse{MessageIds: ids}, nil
}

func (g *grpcStandIn) BatchGetDocuments(req *firestorepb.BatchGetDocumentsRequest, srv firestorepb.Firestore_BatchGetDocumentsServer) error {
	g.record(srv.Context())
	for _, name := range req.Documents {
		if err := srv.Send(&firestorepb.BatchGetDocumentsResponse{
			Result: &firestorepb.BatchGetDocumentsResponse_Missing{Missing: name}, ReadTime: nil,
		}); err != nil {
			return err
		}
	}
	return nil
}

func startGRPC(t *testing.T) (*grpcStandIn, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &grpcStandIn{}
	srv := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key})))
	pubsubpb.RegisterPublisherServer(srv, g)
	firestorepb.RegisterFirestoreServer(srv, g)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return g, lis.Addr().String(), pool
}

// The Pub/Sub and Firestore clients built with ClientOptions send the impersonated service
// account's token on every call.
func TestClientsSendFederatedToken(t *testing.T) {
	newFixture(t)
	t.Setenv("PUBSUB_EMULATOR_HOST", "")
	t.Setenv("FIRESTORE_EMULATOR_HOST", "")
	c := load(t)
	g, addr, pool := startGRPC(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := []option.ClientOption{
		option.WithEndpoint(addr),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool}))),
	}

	ps, err := pubsub.NewClient(ctx, "proj", append(c.ClientOptions("PUBSUB_EMULATOR_HOST"), conn...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	pub := ps.Publisher("analyses")
	defer pub.Stop()
	if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte("x")}).Get(ctx); err != nil {
		t.Fatalf("publish: %v (%v)", err, status.Code(err))
	}

	fs, err := firestore.NewClient(ctx, "proj", append(c.ClientOptions("FIRESTORE_EMULATOR_HOST"), conn...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if _, err := fs.Collection("images").Doc("d").Get(ctx); status.Code(err) != codes.NotFound { // the stand-in reports it missing
		t.Fatalf("firestore get: %v", err)
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.auths) < 2 {
		t.Fatalf("authorization headers %v, want one per call", g.auths)
	}
	for _, a := range g.auths {
		if a != "Bearer sa-token-1" {
			t.Fatalf("authorization %q, want the impersonated service account's token", a)
		}
	}
}

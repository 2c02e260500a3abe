package iam

import (
	"strings"
	"testing"
)

// The derivation, on a fixture that calls the SQS client in every way it must see (direct,
// through an interface, as a method value, in a closure run by code without bodies, through a
// paginator) and in ways it must not count (a function never called, a method reachable only
// by reflection).
func TestDeriveFixture(t *testing.T) {
	got, err := DeriveFrom("../..", []string{"./internal/iam/iamfixture"}, map[string]string{"fixture": "./internal/iam/iamfixture"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, op := range Sorted(got["fixture"]) {
		names = append(names, op.Method)
	}
	want := "DeleteMessage GetQueueUrl ListQueues ReceiveMessage SendMessage"
	if strings.Join(names, " ") != want {
		t.Fatalf("operations %v, want %s", names, want)
	}
}

func TestPermissions(t *testing.T) {
	ops := map[Op]bool{
		{sqsPkg, "Client", "DeleteMessageBatch"}: true,
		{sqsPkg, "Client", "DeleteMessage"}:      true,
		{firestorePkg, "Client", "RunQuery"}:     true,
		{fsWritesPkg, "Transaction", "Set"}:      true,
		{pubsubPkg, "TopicAdminClient", "Close"}: true,
		{sqsPkg, "Client", "TagQueue"}:           true, // not in the table
	}
	aws, gcp, unmapped := Permissions(ops)
	if strings.Join(Keys(aws), " ") != "sqs:DeleteMessage" {
		t.Errorf("aws %v", Keys(aws))
	}
	if strings.Join(Keys(gcp), " ") != "datastore.entities.create datastore.entities.get datastore.entities.list datastore.entities.update" {
		t.Errorf("gcp %v", Keys(gcp))
	}
	if len(unmapped) != 1 || unmapped[0].Method != "TagQueue" {
		t.Errorf("unmapped %v", unmapped)
	}
	if d := Diff(map[string]bool{"a": true, "b": true}, map[string]bool{"b": true, "c": true}); d != "extra [a], missing [c]" {
		t.Errorf("Diff = %q", d)
	}
}

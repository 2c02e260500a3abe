package iam

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

const (
	s3Pkg        = "github.com/aws/aws-sdk-go-v2/service/s3"
	sqsPkg       = "github.com/aws/aws-sdk-go-v2/service/sqs"
	pubsubPkg    = "cloud.google.com/go/pubsub/v2/apiv1"
	firestorePkg = "cloud.google.com/go/firestore/apiv1"
	fsWritesPkg  = "cloud.google.com/go/firestore"
)

// Actions is the hand-kept table from each operation to the IAM actions (AWS, "service:Action")
// or permissions (Google Cloud, "service.resource.verb") it needs. An operation mapped to no
// action needs none of its own: closing a client; the Firestore RPCs whose permissions depend
// on what they carry (Commit, BatchWrite: see the write methods); reads whose RPC is listed.
//
// Sources: the AWS Service Authorization Reference for Amazon S3 and Amazon SQS, and the
// Firestore and Pub/Sub access control pages ("Required permissions for API methods").
var Actions = map[Op][]string{
	// Amazon S3. Without s3:ListBucket on the bucket, S3 answers 403 instead of 404 for a
	// missing key, which the analyzer (an object deleted before it is read) and the uploader
	// (is this content already there?) must tell apart.
	{s3Pkg, "Client", "GetObject"}:                          {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"}, // a versioned event names its version
	{s3Pkg, "Client", "HeadObject"}:                         {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"},
	{s3Pkg, "PresignClient", "PresignGetObject"}:            {"s3:GetObject", "s3:GetObjectVersion"}, // Vision fetches with the analyzer's signature
	{s3Pkg, "PresignClient", "PresignPutObject"}:            {"s3:PutObject"},                        // a browser uploads with the console's signature
	{s3Pkg, "Client", "PutObject"}:                          {"s3:PutObject"},
	{s3Pkg, "Client", "CreateMultipartUpload"}:              {"s3:PutObject"},
	{s3Pkg, "Client", "UploadPart"}:                         {"s3:PutObject"},
	{s3Pkg, "Client", "CompleteMultipartUpload"}:            {"s3:PutObject"},
	{s3Pkg, "Client", "AbortMultipartUpload"}:               {"s3:AbortMultipartUpload"},
	{s3Pkg, "Client", "ListObjectsV2"}:                      {"s3:ListBucket"},
	{s3Pkg, "Client", "DeleteObject"}:                       {"s3:DeleteObject", "s3:DeleteObjectVersion"}, // by version on a versioned bucket
	{s3Pkg, "Client", "ListParts"}:                          {"s3:ListMultipartUploadParts"},
	{s3Pkg, "Client", "ListMultipartUploads"}:               {"s3:ListBucketMultipartUploads"},
	{s3Pkg, "Client", "CopyObject"}:                         {"s3:GetObject", "s3:PutObject"},
	{s3Pkg, "Client", "PutBucketNotificationConfiguration"}: {"s3:PutBucketNotification"},
	{s3Pkg, "Client", "GetBucketCors"}:                      {"s3:GetBucketCORS"},
	{s3Pkg, "Client", "PutBucketCors"}:                      {"s3:PutBucketCORS"},

	// Amazon SQS: a batch call needs the single call's action.
	{sqsPkg, "Client", "ReceiveMessage"}:               {"sqs:ReceiveMessage"},
	{sqsPkg, "Client", "DeleteMessage"}:                {"sqs:DeleteMessage"},
	{sqsPkg, "Client", "DeleteMessageBatch"}:           {"sqs:DeleteMessage"},
	{sqsPkg, "Client", "ChangeMessageVisibility"}:      {"sqs:ChangeMessageVisibility"},
	{sqsPkg, "Client", "ChangeMessageVisibilityBatch"}: {"sqs:ChangeMessageVisibility"},
	{sqsPkg, "Client", "SendMessage"}:                  {"sqs:SendMessage"},
	{sqsPkg, "Client", "SendMessageBatch"}:             {"sqs:SendMessage"},
	{sqsPkg, "Client", "GetQueueAttributes"}:           {"sqs:GetQueueAttributes"},
	{sqsPkg, "Client", "GetQueueUrl"}:                  {"sqs:GetQueueUrl"},
	{sqsPkg, "Client", "ListQueues"}:                   {"sqs:ListQueues"},
	{sqsPkg, "Client", "ListDeadLetterSourceQueues"}:   {"sqs:ListDeadLetterSourceQueues"},
	{sqsPkg, "Client", "StartMessageMoveTask"}:         {"sqs:StartMessageMoveTask"},
	{sqsPkg, "Client", "ListMessageMoveTasks"}:         {"sqs:ListMessageMoveTasks"},
	{sqsPkg, "Client", "CancelMessageMoveTask"}:        {"sqs:CancelMessageMoveTask"},
	{sqsPkg, "Client", "PurgeQueue"}:                   {"sqs:PurgeQueue"},
	{sqsPkg, "Client", "CreateQueue"}:                  {"sqs:CreateQueue"},
	{sqsPkg, "Client", "SetQueueAttributes"}:           {"sqs:SetQueueAttributes"},

	// Google Cloud Pub/Sub: pulling, acknowledging and extending deadlines are "consume".
	{pubsubPkg, "TopicAdminClient", "Publish"}:                    {"pubsub.topics.publish"},
	{pubsubPkg, "TopicAdminClient", "GetTopic"}:                   {"pubsub.topics.get"},
	{pubsubPkg, "SubscriptionAdminClient", "StreamingPull"}:       {"pubsub.subscriptions.consume"},
	{pubsubPkg, "SubscriptionAdminClient", "Pull"}:                {"pubsub.subscriptions.consume"},
	{pubsubPkg, "SubscriptionAdminClient", "Acknowledge"}:         {"pubsub.subscriptions.consume"},
	{pubsubPkg, "SubscriptionAdminClient", "ModifyAckDeadline"}:   {"pubsub.subscriptions.consume"},
	{pubsubPkg, "SubscriptionAdminClient", "GetSubscription"}:     {"pubsub.subscriptions.get"},
	{pubsubPkg, "SubscriptionAdminClient", "Seek"}:                {"pubsub.subscriptions.consume"},
	{pubsubPkg, "TopicAdminClient", "Close"}:                      nil,
	{pubsubPkg, "TopicAdminClient", "SetGoogleClientInfo"}:        nil,
	{pubsubPkg, "SubscriptionAdminClient", "Close"}:               nil,
	{pubsubPkg, "SubscriptionAdminClient", "SetGoogleClientInfo"}: nil,
	{pubsubPkg, "SchemaClient", "Close"}:                          nil,
	{pubsubPkg, "SchemaClient", "SetGoogleClientInfo"}:            nil,

	// Firestore RPCs. Transactions need datastore.databases.get; queries read and list.
	{firestorePkg, "Client", "BatchGetDocuments"}:   {"datastore.entities.get"},
	{firestorePkg, "Client", "GetDocument"}:         {"datastore.entities.get"},
	{firestorePkg, "Client", "BeginTransaction"}:    {"datastore.databases.get"},
	{firestorePkg, "Client", "Rollback"}:            {"datastore.databases.get"},
	{firestorePkg, "Client", "RunQuery"}:            {"datastore.entities.get", "datastore.entities.list"},
	{firestorePkg, "Client", "RunAggregationQuery"}: {"datastore.entities.list"},
	{firestorePkg, "Client", "ListDocuments"}:       {"datastore.entities.get", "datastore.entities.list"},
	{firestorePkg, "Client", "Commit"}:              nil,
	{firestorePkg, "Client", "BatchWrite"}:          nil,
	{firestorePkg, "Client", "Close"}:               nil,
	{firestorePkg, "Client", "SetGoogleClientInfo"}: nil,

	// Firestore writes, carried by Commit or BatchWrite: a Set is an upsert (create or
	// update), a Create has the precondition "does not exist", an Update "exists".
	{fsWritesPkg, "Transaction", "Set"}:    {"datastore.entities.create", "datastore.entities.update"},
	{fsWritesPkg, "Transaction", "Create"}: {"datastore.entities.create"},
	{fsWritesPkg, "Transaction", "Update"}: {"datastore.entities.update"},
	{fsWritesPkg, "Transaction", "Delete"}: {"datastore.entities.delete"},
	{fsWritesPkg, "DocumentRef", "Set"}:    {"datastore.entities.create", "datastore.entities.update"},
	{fsWritesPkg, "DocumentRef", "Create"}: {"datastore.entities.create"},
	{fsWritesPkg, "DocumentRef", "Update"}: {"datastore.entities.update"},
	{fsWritesPkg, "DocumentRef", "Delete"}: {"datastore.entities.delete"},
	{fsWritesPkg, "WriteBatch", "Set"}:     {"datastore.entities.create", "datastore.entities.update"},
	{fsWritesPkg, "WriteBatch", "Create"}:  {"datastore.entities.create"},
	{fsWritesPkg, "WriteBatch", "Update"}:  {"datastore.entities.update"},
	{fsWritesPkg, "WriteBatch", "Delete"}:  {"datastore.entities.delete"},
	{fsWritesPkg, "BulkWriter", "Set"}:     {"datastore.entities.create", "datastore.entities.update"},
	{fsWritesPkg, "BulkWriter", "Create"}:  {"datastore.entities.create"},
	{fsWritesPkg, "BulkWriter", "Update"}:  {"datastore.entities.update"},
	{fsWritesPkg, "BulkWriter", "Delete"}:  {"datastore.entities.delete"},
	// Reads through the write types: their RPC (BatchGetDocuments, RunQuery) is listed.
	{fsWritesPkg, "Transaction", "Get"}:       nil,
	{fsWritesPkg, "Transaction", "GetAll"}:    nil,
	{fsWritesPkg, "Transaction", "Documents"}: nil,
	{fsWritesPkg, "DocumentRef", "Get"}:       nil,
	{fsWritesPkg, "BulkWriter", "Flush"}:      nil,
	{fsWritesPkg, "BulkWriter", "End"}:        nil,
}

// Permissions are the actions a set of operations needs, split by cloud: AWS actions contain
// a colon, Google Cloud permissions do not. Operations missing from Actions are returned, so
// that a new call cannot go unnoticed.
func Permissions(ops map[Op]bool) (aws, gcp map[string]bool, unmapped []Op) {
	aws, gcp = map[string]bool{}, map[string]bool{}
	for op := range ops {
		acts, ok := Actions[op]
		if !ok {
			unmapped = append(unmapped, op)
			continue
		}
		for _, a := range acts {
			if strings.Contains(a, ":") {
				aws[a] = true
			} else {
				gcp[a] = true
			}
		}
	}
	sort.Slice(unmapped, func(i, j int) bool { return unmapped[i].String() < unmapped[j].String() })
	return aws, gcp, unmapped
}

// Keys returns the set's members sorted, for comparisons and messages.
func Keys(set map[string]bool) []string { return slices.Sorted(maps.Keys(set)) }

// Diff describes how got differs from want, or is empty when they are equal.
func Diff(got, want map[string]bool) string {
	var more, less []string
	for k := range got {
		if !want[k] {
			more = append(more, k)
		}
	}
	for k := range want {
		if !got[k] {
			less = append(less, k)
		}
	}
	sort.Strings(more)
	sort.Strings(less)
	if len(more) == 0 && len(less) == 0 {
		return ""
	}
	return fmt.Sprintf("extra %v, missing %v", more, less)
}

// Package s3standin is the project's local Amazon S3: gofakes3 over its in-memory backend,
// plus the part no available stand-in does faithfully, S3 event notifications delivered to
// SQS queues (the SQS stand-in, fauxqs, in the local stack).
//
// # Addressing
//
// Path-style only: requests are /BUCKET/KEY. Clients must set UsePathStyle (aws-sdk-go-v2:
// s3.Options.UsePathStyle = true) and use the stand-in's URL as the endpoint.
//
// # Notification configuration
//
// PUT /BUCKET?notification (PutBucketNotificationConfiguration) stores the bucket's
// QueueConfiguration elements: Id (generated when absent), Queue (an SQS queue ARN), one or
// more Event and an optional Filter/S3Key with prefix and suffix rules. Accepted events:
// s3:ObjectCreated:* / Put / Post / Copy / CompleteMultipartUpload and
// s3:ObjectRemoved:* / Delete / DeleteMarkerCreated. It answers as S3 does:
//
//   - 404 NoSuchBucket for an unknown bucket;
//   - 400 InvalidArgument for an unsupported event type, a bad filter rule, duplicate IDs, or
//     two configurations that overlap (a common event type, and prefixes and suffixes that
//     can both match one key; S3 forbids this whatever the destinations);
//   - 400 InvalidArgument "Unable to validate the following destination configurations" when
//     a queue ARN is malformed or the s3:TestEvent cannot be delivered to it. Like S3, the
//     stand-in validates each destination by sending it an s3:TestEvent, synchronously;
//     x-amz-skip-destination-validation: true skips that (and the test event).
//   - TopicConfiguration, CloudFunctionConfiguration and EventBridgeConfiguration are refused
//     with 400 InvalidArgument: the stand-in delivers to SQS queues only.
//
// An empty NotificationConfiguration removes the bucket's configuration, and so does deleting
// the bucket. GET /BUCKET?notification returns the stored configuration in S3's XML (filter
// rule names capitalised, "Prefix" and "Suffix", as S3 answers).
//
// A queue ARN arn:aws:sqs:REGION:ACCOUNT:NAME is resolved with GetQueueUrl(QueueName=NAME)
// on the configured SQS endpoint and cached; REGION and ACCOUNT are not checked.
//
// # Events
//
// After each successful write the stand-in builds AWS-shaped records with imgpipe/pkg/s3event
// (one record per message, as S3 sends them) for every configuration whose event types and
// key filters select it: PutObject (ObjectCreated:Put), browser POST upload (Post),
// CopyObject (Copy, recognised by x-amz-copy-source), CompleteMultipartUpload, DeleteObject
// (ObjectRemoved:Delete, or DeleteMarkerCreated when a versioned bucket got a delete marker)
// and DeleteObjects (one event per deleted key). A failed request sends nothing. Filters
// apply to the decoded key. Records carry size and eTag (unquoted; the multipart ETag for
// CompleteMultipartUpload) for creations only, versionId on versioning-enabled buckets, and a
// sequencer: 18 upper-case hex digits from a global counter that follows the clock, so it
// grows strictly per key across all events (and across restarts). The object keys a request
// writes are locked while it runs, so sequencers follow the order of the writes on each key.
// DeleteObject of a missing key succeeds in S3 and so does its event here.
//
// # Delivery
//
// Event messages go to an in-memory outbox drained by one goroutine with SendMessage, or
// SendMessageBatch when several are pending for one queue. A failed send is retried with
// exponential backoff (100 ms to 5 s) until Close; delivery is at least once and, as in S3,
// not ordered. A message whose queue no longer exists is retried for 30 s (a restarted SQS
// stand-in may be re-creating it), then dropped and logged, as S3 drops events for a deleted
// destination; one SQS rejects as malformed is dropped at once. Stats counts all of this.
//
// The answer to a write is held until its events are in the outbox, so once a client has seen
// success, Flush covers its events. When the outbox holds QueueCapacity messages a writer
// waits up to 5 s for room and then its events are accepted beyond capacity, with an error
// logged: S3 never drops an event, so the stand-in slows writers and grows rather than lose
// one. After Close, object writes are refused with 503 so that no write happens without its
// event.
//
// # Presigned URLs and CORS
//
// With Options.Credentials (access key ID -> secret key) every request authenticated in its
// query string, a presigned URL, is verified as S3 verifies Signature Version 4: the
// signature over the method, the path as sent, the query, the signed headers as the request
// carries them (so a presigned PUT's signed Content-Type, Content-Length and x-amz-meta-*
// values are enforced) and UNSIGNED-PAYLOAD; the expiry (X-Amz-Expires, at most 7 days) and a
// signing time at most 15 minutes ahead; and no x-amz-* header that was not signed. Failures
// answer as S3 does: 403 SignatureDoesNotMatch, InvalidAccessKeyId or AccessDenied ("Request
// has expired", "There were headers present in the request which were not signed"), 400
// AuthorizationQueryParametersError. Without Credentials presigned requests are served
// unchecked. Requests signed in the Authorization header are never verified.
//
// PUT, GET and DELETE /BUCKET?cors (PutBucketCors, GetBucketCors, DeleteBucketCors) store a
// bucket's CORSRule list (origins with one '*' wildcard at most, methods GET PUT HEAD POST
// DELETE, allowed headers with wildcards, expose headers, max age). A preflight (OPTIONS with
// Origin and Access-Control-Request-Method) is answered 200 from the first rule allowing the
// origin, the method and every requested header, else 403 AccessForbidden, as is every
// preflight on a bucket without CORS. Other answers carry Access-Control-* headers only when
// the request has an Origin that a rule allows with the request's method; gofakes3's own
// allow-everything CORS headers are removed.
//
// # What gofakes3 does not do
//
// Versioning works (PutBucketVersioning, version IDs, delete markers), but a Suspended bucket
// behaves as unversioned (no "null" versions or null delete markers). Browser POST uploads
// work without policy or signature checks and without ${filename} substitution. CopyObject
// ignores a versionId in x-amz-copy-source and answers with the source's version ID in
// x-amz-version-id (the event carries the destination's). Virtual-hosted-style addressing,
// bucket policies, tagging, lifecycle, object lock and SSE are not served; a PUT to an
// unsupported bucket subresource (?tagging, ?policy, ...) is taken by gofakes3 as
// CreateBucket.
package s3standin

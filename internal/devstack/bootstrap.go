package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Resources names what Bootstrap creates. The zero value of a field takes its default from
// DefaultResources.
type Resources struct {
	Bucket string
	Prefix string // the drop prefix the notification filters on, "upload/"

	Queue             string
	DLQ               string
	MaxReceiveCount   int           // redrive to the DLQ after this many receives
	VisibilityTimeout time.Duration // the queue's default visibility timeout

	Topic                  string
	Subscription           string
	DeadLetterTopic        string
	DeadLetterSubscription string
	MaxDeliveryAttempts    int // Pub/Sub dead-lettering after this many deliveries (5..100)
	AckDeadline            time.Duration
	// RetryPolicy gives the subscription a retry policy of MinBackoff to MaxBackoff. It is off
	// by default: the Pub/Sub emulator loses messages in its retry-policy path (a message whose
	// second delivery ends while the subscriber's flow control is full is never delivered
	// again nor dead-lettered; README, stand-in table), so without it the emulator redelivers
	// a nacked message at once, as it does with no policy. Setting MinBackoff or MaxBackoff
	// without RetryPolicy is an error.
	RetryPolicy            bool
	MinBackoff, MaxBackoff time.Duration // the retry policy's backoff, with RetryPolicy

	Collection string // Firestore collection of the index
}

// Default retry-policy backoff of a Resources with RetryPolicy.
const (
	defaultMinBackoff = time.Second
	defaultMaxBackoff = 60 * time.Second
)

// DefaultResources are the names the local stack and the binaries' defaults agree on. It has
// no retry policy (RetryPolicy off, no backoff); with RetryPolicy, the backoff defaults to
// 1 s to 60 s.
func DefaultResources() Resources {
	return Resources{
		Bucket:                 "images",
		Prefix:                 "upload/",
		Queue:                  "image-events",
		DLQ:                    "image-events-dlq",
		MaxReceiveCount:        5,
		VisibilityTimeout:      30 * time.Second,
		Topic:                  "image-analyses",
		Subscription:           "image-analyses-indexer",
		DeadLetterTopic:        "image-analyses-dead-letter",
		DeadLetterSubscription: "image-analyses-dead-letter-sub",
		MaxDeliveryAttempts:    5,
		AckDeadline:            60 * time.Second,
		Collection:             "images",
	}
}

func (r Resources) withDefaults() Resources {
	d := DefaultResources()
	set := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	set(&r.Bucket, d.Bucket)
	set(&r.Prefix, d.Prefix)
	set(&r.Queue, d.Queue)
	set(&r.DLQ, d.DLQ)
	set(&r.Topic, d.Topic)
	set(&r.Subscription, d.Subscription)
	set(&r.DeadLetterTopic, d.DeadLetterTopic)
	set(&r.DeadLetterSubscription, d.DeadLetterSubscription)
	set(&r.Collection, d.Collection)
	if r.MaxReceiveCount == 0 {
		r.MaxReceiveCount = d.MaxReceiveCount
	}
	if r.VisibilityTimeout == 0 {
		r.VisibilityTimeout = d.VisibilityTimeout
	}
	if r.MaxDeliveryAttempts == 0 {
		r.MaxDeliveryAttempts = d.MaxDeliveryAttempts
	}
	if r.AckDeadline == 0 {
		r.AckDeadline = d.AckDeadline
	}
	if r.RetryPolicy && r.MinBackoff == 0 {
		r.MinBackoff = defaultMinBackoff
	}
	if r.RetryPolicy && r.MaxBackoff == 0 {
		r.MaxBackoff = defaultMaxBackoff
	}
	return r
}

// Bootstrapped is what Bootstrap created or found, with the full names the clients need.
type Bootstrapped struct {
	Resources
	QueueURL, QueueARN, DLQURL, DLQARN string
	TopicName, SubscriptionName        string // projects/P/topics/T, projects/P/subscriptions/S
	DeadLetterTopicName                string
	DeadLetterSubscriptionName         string
}

// Bootstrap creates the pipeline's resources on the stack's parts: for SQS the queue and its
// DLQ with a redrive policy; for S3 the bucket and its notification configuration sending
// ObjectCreated:*, ObjectRemoved:* and LifecycleExpiration:* under the prefix to the queue; for
// Pub/Sub the topic, the subscription with a dead-letter policy (and a retry policy only with
// Resources.RetryPolicy), the dead-letter topic and a subscription on it. Running it again on
// the same stack changes nothing and succeeds.
func (s *Stack) Bootstrap(ctx context.Context, res Resources) (*Bootstrapped, error) {
	if !res.RetryPolicy && (res.MinBackoff != 0 || res.MaxBackoff != 0) {
		return nil, errors.New("bootstrap: MinBackoff or MaxBackoff set without RetryPolicy")
	}
	r := res.withDefaults()
	b := &Bootstrapped{Resources: r}
	if s.Parts&SQS != 0 {
		if err := s.bootstrapSQS(ctx, b); err != nil {
			return nil, fmt.Errorf("bootstrap sqs: %w", err)
		}
	}
	if s.Parts&S3 != 0 {
		if err := s.bootstrapS3(ctx, b); err != nil {
			return nil, fmt.Errorf("bootstrap s3: %w", err)
		}
	}
	if s.Parts&PubSub != 0 {
		if err := s.bootstrapPubSub(ctx, b); err != nil {
			return nil, fmt.Errorf("bootstrap pubsub: %w", err)
		}
	}
	return b, nil
}

func (s *Stack) bootstrapSQS(ctx context.Context, b *Bootstrapped) error {
	client := s.NewSQSClient()
	createQueue := func(name string, attrs map[string]string) (url, arn string, err error) {
		out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
		if err != nil {
			return "", "", fmt.Errorf("create queue %s: %w", name, err)
		}
		url = aws.ToString(out.QueueUrl)
		// CreateQueue on an existing queue returns its URL without changing its attributes;
		// set them so a second bootstrap converges on the same configuration.
		if len(attrs) > 0 {
			if _, err := client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: &url, Attributes: attrs}); err != nil {
				return "", "", fmt.Errorf("set attributes of %s: %w", name, err)
			}
		}
		ga, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
			QueueUrl: &url, AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
		})
		if err != nil {
			return "", "", fmt.Errorf("queue arn of %s: %w", name, err)
		}
		return url, ga.Attributes[string(sqstypes.QueueAttributeNameQueueArn)], nil
	}
	var err error
	// The DLQ keeps messages for the SQS maximum, 14 days, so operators have time to act.
	b.DLQURL, b.DLQARN, err = createQueue(b.DLQ, map[string]string{"MessageRetentionPeriod": "1209600"})
	if err != nil {
		return err
	}
	redrive, _ := json.Marshal(map[string]any{"deadLetterTargetArn": b.DLQARN, "maxReceiveCount": b.MaxReceiveCount})
	b.QueueURL, b.QueueARN, err = createQueue(b.Queue, map[string]string{
		"VisibilityTimeout": strconv.Itoa(int(b.VisibilityTimeout / time.Second)),
		"RedrivePolicy":     string(redrive),
	})
	return err
}

func (s *Stack) bootstrapS3(ctx context.Context, b *Bootstrapped) error {
	client := s.NewS3Client()
	_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b.Bucket)})
	var owned *s3types.BucketAlreadyOwnedByYou
	var exists *s3types.BucketAlreadyExists
	if err != nil && !errors.As(err, &owned) && !errors.As(err, &exists) {
		return fmt.Errorf("create bucket %s: %w", b.Bucket, err)
	}
	_, err = client.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(b.Bucket),
		NotificationConfiguration: &s3types.NotificationConfiguration{
			QueueConfigurations: []s3types.QueueConfiguration{{
				Id:       aws.String("imgpipe-uploads"),
				QueueArn: aws.String(b.QueueARN),
				Events:   []s3types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"},
				Filter: &s3types.NotificationConfigurationFilter{Key: &s3types.S3KeyFilter{
					FilterRules: []s3types.FilterRule{{Name: s3types.FilterRuleNamePrefix, Value: aws.String(b.Prefix)}},
				}},
			}},
		},
	})
	if err != nil {
		return fmt.Errorf("notification configuration of %s: %w", b.Bucket, err)
	}
	return nil
}

func (s *Stack) bootstrapPubSub(ctx context.Context, b *Bootstrapped) error {
	s.SetEmulatorEnv()
	client, err := pubsub.NewClient(ctx, s.ProjectID)
	if err != nil {
		return err
	}
	defer client.Close()
	project := "projects/" + s.ProjectID
	b.TopicName = project + "/topics/" + b.Topic
	b.DeadLetterTopicName = project + "/topics/" + b.DeadLetterTopic
	b.SubscriptionName = project + "/subscriptions/" + b.Subscription
	b.DeadLetterSubscriptionName = project + "/subscriptions/" + b.DeadLetterSubscription

	for _, name := range []string{b.TopicName, b.DeadLetterTopicName} {
		if _, err := client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: name}); err != nil && status.Code(err) != codes.AlreadyExists {
			return fmt.Errorf("create topic %s: %w", name, err)
		}
	}
	var retry *pubsubpb.RetryPolicy
	if b.RetryPolicy {
		retry = &pubsubpb.RetryPolicy{MinimumBackoff: durationpb.New(b.MinBackoff), MaximumBackoff: durationpb.New(b.MaxBackoff)}
	}
	subs := []*pubsubpb.Subscription{
		{
			Name:               b.SubscriptionName,
			Topic:              b.TopicName,
			AckDeadlineSeconds: int32(b.AckDeadline / time.Second),
			// Ordering stays off: the indexer's sequencer guard makes delivery order
			// irrelevant to the result, and the Pub/Sub emulator never dead-letters a message
			// on an ordered subscription (measured: after MaxDeliveryAttempts nacks it is
			// neither redelivered nor forwarded). Records still carry ordering keys.
			DeadLetterPolicy: &pubsubpb.DeadLetterPolicy{
				DeadLetterTopic:     b.DeadLetterTopicName,
				MaxDeliveryAttempts: int32(b.MaxDeliveryAttempts),
			},
			RetryPolicy: retry,
		},
		{
			Name:               b.DeadLetterSubscriptionName,
			Topic:              b.DeadLetterTopicName,
			AckDeadlineSeconds: int32(b.AckDeadline / time.Second),
			// Dead letters wait for an operator: keep them for the maximum, 7 days.
			MessageRetentionDuration: durationpb.New(7 * 24 * time.Hour),
		},
	}
	for _, sub := range subs {
		if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, sub); err != nil && status.Code(err) != codes.AlreadyExists {
			return fmt.Errorf("create subscription %s: %w", sub.Name, err)
		}
	}
	return nil
}

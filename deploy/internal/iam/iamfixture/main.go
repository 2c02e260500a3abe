// Command iamfixture is the test fixture of deploy/internal/iam's derivation: it calls the
// SQS client in every way the derivation must see, and in ways it must not count. It is not
// meant to be run.
package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// deleter is an interface the client satisfies: calls through it are operations.
type deleter interface {
	DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
}

// holder's exported method is reachable only by reflection (fmt prints holder): its call must
// not count.
type holder struct{ c *sqs.Client }

func (h holder) Purge() { _, _ = h.c.PurgeQueue(context.Background(), nil) }

func (h holder) String() string { return "holder" }

// never is not called at all.
func never(c *sqs.Client) { _, _ = c.CreateQueue(context.Background(), nil) }

func send(f func(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)) {
	_, _ = f(context.Background(), nil)
}

func main() {
	ctx := context.Background()
	c := sqs.NewFromConfig(aws.Config{})
	_, _ = c.ReceiveMessage(ctx, nil) // a direct call
	var d deleter = c
	_, _ = d.DeleteMessage(ctx, nil) // through an interface
	send(c.SendMessage)              // a method value
	// A closure handed to a function whose body is not loaded, which calls it.
	sync.OnceFunc(func() { _, _ = c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("q")}) })()
	p := sqs.NewListQueuesPaginator(c, nil) // the paginator calls ListQueues inside the SDK
	_ = p
	fmt.Println(holder{c: c})
}

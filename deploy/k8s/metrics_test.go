package k8s

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"imgpipe/pkg/analyzer"
	"imgpipe/pkg/objects/s3objects"
	"imgpipe/pkg/obs"
	"imgpipe/pkg/queue/sqsqueue"
	"imgpipe/pkg/record"
	"imgpipe/pkg/vision"
)

// unusedPublisher satisfies analyzer.Deps; the analyzer built here is never run.
type unusedPublisher struct{}

func (unusedPublisher) Publish(context.Context, *record.Analysis) (string, error) {
	return "", errors.New("not for publishing: the analyzer is only built to list its metrics")
}

// analyzerMetricNames builds an analyzer the way cmd/analyzer does (its real clients, which
// connect to nothing until used) and lists the metric families its registry exports.
func analyzerMetricNames(ctx context.Context) (map[string]bool, error) {
	reg := obs.NewRegistry()
	vobs := analyzer.NewVisionObserver()
	cred, err := vision.NewKeyCredential("unused")
	if err != nil {
		return nil, err
	}
	vc, err := vision.New("https://unused.cognitiveservices.azure.com", cred, &vision.Options{Observer: vobs})
	if err != nil {
		return nil, err
	}
	defer vc.Close()
	reg.MustRegister(analyzer.NewSQSCalls()) // as cmd/analyzer counts its SQS client's calls
	client := sqs.New(sqs.Options{Region: "eu-west-1"})
	events, err := sqsqueue.New(client, "https://unused/q", nil)
	if err != nil {
		return nil, err
	}
	dlq, err := sqsqueue.New(client, "https://unused/dlq", nil)
	if err != nil {
		return nil, err
	}
	_, err = analyzer.New(analyzer.Deps{
		Queue: events, DLQ: dlq, Objects: s3objects.New(s3.New(s3.Options{Region: "eu-west-1"})),
		Vision: vc, Publisher: unusedPublisher{},
	}, &analyzer.Options{Registerer: reg, VisionObserver: vobs})
	if err != nil {
		return nil, err
	}
	fams, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "imgpipe_") {
			names[f.GetName()] = true
		}
	}
	if len(names) == 0 {
		return nil, errors.New("the analyzer registered no imgpipe_ metric")
	}
	return names, nil
}

// A Go client generated from the contract with Debian's protoc-gen-go and protoc-gen-go-grpc: submit a demo task and
// watch it to its end, then submit a long sleep, stop it and watch it end REVOKED.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/taskservice/taskservice/gen/go/taskservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
)

func watchToEnd(client v1.TaskServiceClient, taskID string) (v1.TaskState, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := client.WatchProgress(ctx, &v1.WatchProgressRequest{TaskId: taskID})
	if err != nil {
		return v1.TaskState_TASK_STATE_UNSPECIFIED, 0, err
	}
	last, events := v1.TaskState_TASK_STATE_UNSPECIFIED, 0
	for {
		event, err := stream.Recv()
		if err == io.EOF {
			return last, events, nil
		}
		if err != nil {
			return last, events, err
		}
		events++
		last = event.GetState()
	}
}

func submit(client v1.TaskServiceClient, taskType string, args map[string]interface{}) (string, error) {
	fields, err := structpb.NewStruct(args)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, err := client.Submit(ctx, &v1.SubmitRequest{TaskType: taskType, Args: fields})
	if err != nil {
		return "", err
	}
	return answer.GetTask().GetTaskId(), nil
}

func main() {
	conn, err := grpc.Dial(os.Args[1], grpc.WithInsecure())
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	client := v1.NewTaskServiceClient(conn)
	demo, err := submit(client, "demo", map[string]interface{}{"steps": 3})
	if err != nil {
		panic(err)
	}
	end, events, err := watchToEnd(client, demo)
	if err != nil {
		panic(err)
	}
	fmt.Printf("demo %s %s after %d events\n", demo, end, events)
	sleeper, err := submit(client, "sleep", map[string]interface{}{"seconds": 60})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.Stop(ctx, &v1.StopRequest{TaskId: sleeper, Reason: "stopped from Go"}); err != nil {
		panic(err)
	}
	end, _, err = watchToEnd(client, sleeper)
	if err != nil {
		panic(err)
	}
	fmt.Printf("sleep %s %s\n", sleeper, end)
}

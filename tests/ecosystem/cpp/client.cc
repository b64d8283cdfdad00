// A C++ client generated from the contract by Debian's protoc and grpc_cpp_plugin, as a new C++ user would build
// it: submit a demo task and watch it to its end, then submit a long sleep, stop it and watch it end REVOKED.
// Prints one line per finished step, for tests/ecosystem/test_codegen_cpp.py to read.

#include <grpcpp/grpcpp.h>

#include <iostream>
#include <memory>
#include <string>

#include "taskservice/v1/task_service.grpc.pb.h"

namespace v1 = taskservice::v1;

static v1::TaskState WatchToEnd(v1::TaskService::Stub& stub, const std::string& task_id, int* events) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::WatchProgressRequest request;
  request.set_task_id(task_id);
  std::unique_ptr<grpc::ClientReader<v1::WatchProgressResponse>> reader(stub.WatchProgress(&context, request));
  v1::WatchProgressResponse event;
  v1::TaskState last = v1::TASK_STATE_UNSPECIFIED;
  while (reader->Read(&event)) {
    ++*events;
    last = event.state();
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    std::cerr << "watch failed: " << status.error_message() << std::endl;
    return v1::TASK_STATE_UNSPECIFIED;
  }
  return last;
}

static bool Submit(v1::TaskService::Stub& stub, const std::string& type, const std::string& arg, double value,
                   std::string* task_id) {
  grpc::ClientContext context;
  v1::SubmitRequest request;
  request.set_task_type(type);
  (*request.mutable_args()->mutable_fields())[arg].set_number_value(value);
  v1::SubmitResponse response;
  grpc::Status status = stub.Submit(&context, request, &response);
  if (!status.ok()) {
    std::cerr << "submit failed: " << status.error_message() << std::endl;
    return false;
  }
  *task_id = response.task().task_id();
  return true;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: client HOST:PORT" << std::endl;
    return 2;
  }
  auto stub = v1::TaskService::NewStub(grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials()));
  std::string demo;
  if (!Submit(*stub, "demo", "steps", 3, &demo)) return 1;
  int events = 0;
  v1::TaskState end = WatchToEnd(*stub, demo, &events);
  std::cout << "demo " << demo << " " << v1::TaskState_Name(end) << " after " << events << " events" << std::endl;

  std::string sleeper;
  if (!Submit(*stub, "sleep", "seconds", 60, &sleeper)) return 1;
  grpc::ClientContext context;
  v1::StopRequest stop;
  stop.set_task_id(sleeper);
  stop.set_reason("stopped from C++");
  v1::StopResponse stopped;
  grpc::Status status = stub->Stop(&context, stop, &stopped);
  if (!status.ok()) {
    std::cerr << "stop failed: " << status.error_message() << std::endl;
    return 1;
  }
  events = 0;
  end = WatchToEnd(*stub, sleeper, &events);
  std::cout << "sleep " << sleeper << " " << v1::TaskState_Name(end) << std::endl;
  return 0;
}

// Test doubles for the gateway: a recording Responder/EventStream and a recording Transport.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "asya/gateway/http.h"
#include "asya/transport/transport.h"

namespace asya::gateway::test {

class RecordingStream final : public EventStream {
 public:
  bool Send(std::string bytes) override {
    std::lock_guard lock(mu_);
    if (closed_)
      return false;
    sent_.push_back(std::move(bytes));
    cv_.notify_all();
    return true;
  }
  void Close() override {
    std::vector<std::function<void()>> cbs;
    {
      std::lock_guard lock(mu_);
      if (closed_)
        return;
      closed_ = true;
      cbs.swap(on_close_);
      cv_.notify_all();
    }
    for (auto& cb : cbs)
      cb();
  }
  bool Closed() const override {
    std::lock_guard lock(mu_);
    return closed_;
  }
  void OnClose(std::function<void()> cb) override {
    {
      std::lock_guard lock(mu_);
      if (!closed_) {
        on_close_.push_back(std::move(cb));
        return;
      }
    }
    cb();
  }
  std::vector<std::string> Sent() const {
    std::lock_guard lock(mu_);
    return sent_;
  }
  // Waits until `pred(sent)` or closed-and-pred fails; returns pred's last value.
  bool WaitFor(const std::function<bool(const std::vector<std::string>&)>& pred,
               std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return pred(sent_); });
  }
  bool WaitClosed(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return closed_; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> sent_;
  bool closed_ = false;
  std::vector<std::function<void()>> on_close_;
};

// One request's answer.
struct Answer {
  bool replied = false;
  Response response;
  int stream_status = 0;
  Headers stream_headers;
  std::shared_ptr<RecordingStream> stream;
};

class RecordingResponder final : public Responder::Impl {
 public:
  explicit RecordingResponder(std::shared_ptr<Answer> a) : a_(std::move(a)) {}
  void Reply(Response r) override {
    a_->replied = true;
    a_->response = std::move(r);
  }
  std::shared_ptr<EventStream> OpenStream(int status, Headers headers) override {
    a_->stream_status = status;
    a_->stream_headers = std::move(headers);
    a_->stream = std::make_shared<RecordingStream>();
    return a_->stream;
  }

 private:
  std::shared_ptr<Answer> a_;
};

inline std::shared_ptr<Answer> Call(const Handler& h, std::string method, std::string path,
                                    std::string body = "", Headers headers = {}) {
  auto a = std::make_shared<Answer>();
  Request r;
  r.method = std::move(method);
  auto q = path.find('?');
  r.path = path.substr(0, q);
  if (q != std::string::npos)
    r.query = path.substr(q + 1);
  r.body = std::move(body);
  r.headers = std::move(headers);
  r.peer = "127.0.0.1:1";
  h(std::move(r), Responder(std::make_shared<RecordingResponder>(a)));
  return a;
}

// A transport that records publishes (or fails them).
class RecordingTransport final : public transport::Transport {
 public:
  struct Published {
    std::string queue;
    std::string body;
  };
  std::string_view Name() const override { return "recording"; }
  Result<std::vector<transport::Message>> Receive(std::string_view,
                                                  const transport::ReceiveOptions&) override {
    return std::vector<transport::Message>{};
  }
  Status Publish(std::string_view queue, std::string_view body,
                 const transport::PublishOptions&) override {
    std::lock_guard lock(mu_);
    if (fail)
      return MakeError(ErrorCode::kUnavailable, "broker down");
    published_.push_back({std::string(queue), std::string(body)});
    cv_.notify_all();
    return {};
  }
  Status Ack(const transport::Message&) override { return {}; }
  Status Nack(const transport::Message&, transport::Millis) override { return {}; }
  Status ExtendVisibility(const transport::Message&, transport::Millis) override { return {}; }
  void Interrupt() override {}
  Status CreateQueue(std::string_view, const transport::QueueOptions&) override { return {}; }
  Status DeleteQueue(std::string_view) override { return {}; }
  Result<bool> QueueExists(std::string_view) override { return true; }
  Result<transport::QueueDepth> Depth(std::string_view) override { return transport::QueueDepth{}; }
  Result<std::vector<std::string>> ListQueues() override { return std::vector<std::string>{}; }
  Status Purge(std::string_view) override { return {}; }

  std::vector<Published> All() {
    std::lock_guard lock(mu_);
    return published_;
  }
  bool WaitCount(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return published_.size() >= n; });
  }
  std::atomic<bool> fail{false};

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Published> published_;
};

}  // namespace asya::gateway::test

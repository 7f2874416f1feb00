// Amazon SQS transport: JSON protocol (AmazonSQS.<Action>) over libcurl, signed with our SigV4.
// See README.md in this directory for the design (long polling, group-committed batches, URL
// cache, credentials).
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "asya/aws/http.h"
#include "asya/aws/sigv4.h"
#include "asya/base/log.h"
#include "asya/transport/sqs.h"
#include "transport/sqs/sqs_util.h"

namespace asya::transport {
namespace {

using nlohmann::json;
using sqs::CeilSeconds;

constexpr std::string_view kJsonContentType = "application/x-amz-json-1.0";

// Non-throwing accessors for SQS responses (a missing or mistyped field reads as empty).
const json& Field(const json& object, const char* key) {
  static const json kNull;
  if (object.is_object()) {
    auto it = object.find(key);
    if (it != object.end()) {
      return *it;
    }
  }
  return kNull;
}
std::string Str(const json& object, const char* key, const std::string& fallback = "") {
  const json& value = Field(object, key);
  return value.is_string() ? value.get<std::string>() : fallback;
}
int64_t Int(const json& object, const char* key, int64_t fallback) {
  std::string text = Str(object, key);
  if (text.empty() || text.size() > 18 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fallback;
  }
  return std::stoll(text);
}

// Group commit of batchable calls (SendMessageBatch, DeleteMessageBatch) per queue URL: a
// caller whose entry is pending and finds no flush in flight sends the oldest entries (up to 10
// and 256 KiB) itself; entries that arrive meanwhile ride the next flush. A lone caller flushes at
// once; when the previous flush carried k > 1 entries the next leader waits up to 2 ms for k to
// gather (concurrent callers share round trips). Every caller returns only when its own entry has
// a result.
class GroupCommitter {
 public:
  struct Entry {
    json request;  // the batch entry without "Id"
    size_t bytes = 0;
  };
  // Sends entries (Ids "0".."n-1" are assigned by the sender) and returns one Status each.
  using Sender = std::function<std::vector<Status>(const std::string& key,
                                                   const std::vector<const Entry*>& entries)>;

  explicit GroupCommitter(Sender sender) : sender_(std::move(sender)) {}

  Status Submit(const std::string& key, Entry entry) {
    auto pending = std::make_shared<Pending>();
    pending->entry = std::move(entry);
    std::unique_lock lock(mu_);
    KeyState& state = states_[key];
    state.queue.push_back(pending);
    if (state.flushing) {
      cv_.notify_all();  // a lingering leader may be waiting for this entry
    }
    while (!pending->done) {
      if (state.flushing) {
        cv_.wait(lock);
        continue;
      }
      state.flushing = true;
      // Adaptive linger: when the previous flush carried several entries, wait briefly for as
      // many to gather; a lone caller (last flush of 1) never waits.
      const size_t expect = std::min(state.last_batch, sqs::kMaxBatchEntries);
      if (expect > 1 && state.queue.size() < expect) {
        cv_.wait_for(lock, kLinger, [&] { return state.queue.size() >= expect; });
      }
      std::vector<std::shared_ptr<Pending>> batch;
      size_t bytes = 0;
      while (!state.queue.empty() && batch.size() < sqs::kMaxBatchEntries) {
        size_t next = state.queue.front()->entry.bytes;
        if (!batch.empty() && bytes + next > sqs::kMaxMessageBytes) {
          break;
        }
        bytes += next;
        batch.push_back(state.queue.front());
        state.queue.pop_front();
      }
      state.last_batch = batch.size();
      lock.unlock();
      std::vector<const Entry*> entries;
      entries.reserve(batch.size());
      for (const auto& p : batch) {
        entries.push_back(&p->entry);
      }
      std::vector<Status> results = sender_(key, entries);
      lock.lock();
      for (size_t i = 0; i < batch.size(); ++i) {
        batch[i]->status = std::move(results[i]);
        batch[i]->done = true;
      }
      state.flushing = false;
      cv_.notify_all();
    }
    return pending->status;
  }

 private:
  struct Pending {
    Entry entry;
    Status status;
    bool done = false;
  };
  struct KeyState {
    std::deque<std::shared_ptr<Pending>> queue;
    bool flushing = false;
    size_t last_batch = 1;
  };
  static constexpr Millis kLinger{2};

  Sender sender_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, KeyState> states_;  // nodes are stable; never erased
};

// How much longer than its WaitTimeSeconds a long poll may take to come back (network, server).
constexpr Millis kQuiesceSlack{5000};

class SqsTransport final : public Transport {
 public:
  SqsTransport(SqsSettings settings, aws::CredentialProviderPtr credentials)
      : settings_(std::move(settings)),
        credentials_(std::move(credentials)),
        sends_([this](const std::string& url, const auto& entries) {
          return SendBatch("SendMessageBatch", url, entries);
        }),
        deletes_([this](const std::string& url, const auto& entries) {
          return SendBatch("DeleteMessageBatch", url, entries);
        }) {
    auto url = aws::ParseUrl(settings_.endpoint);
    host_ = url->authority;
  }

  ~SqsTransport() override {
    // A poll still running at the server would take a message and hide it for the whole
    // visibility timeout if we cut its connection: let it end first (bounded by one long poll).
    Quiesce(Millis(settings_.wait_time_seconds * 1000LL) + kQuiesceSlack);
    {
      std::lock_guard lock(poll_mu_);
      stopping_ = true;
    }
    shutdown_.Cancel();
    poll_cv_.notify_all();
    for (auto& poller : pollers_) {
      poller.join();
    }
  }
  SqsTransport(const SqsTransport&) = delete;
  SqsTransport& operator=(const SqsTransport&) = delete;

  [[nodiscard]] std::string_view Name() const override { return "sqs"; }

  Result<std::vector<Message>> Receive(std::string_view queue,
                                       const ReceiveOptions& options) override {
    const std::string name(queue);
    const auto deadline = std::chrono::steady_clock::now() + options.wait;
    ASYA_ASSIGN_OR_RETURN(std::string url, ResolveForReceive(name));
    while (!cancel_.cancelled()) {
      auto remaining =
          std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
      int wait_s = std::min(CeilSeconds(remaining.count(), 20), settings_.wait_time_seconds);
      json params = {{"QueueUrl", url},
                     {"MaxNumberOfMessages", static_cast<int>(std::clamp<size_t>(
                                                 options.max_messages, 1, sqs::kMaxBatchEntries))},
                     {"WaitTimeSeconds", wait_s},
                     {"VisibilityTimeout",
                      CeilSeconds(options.visibility.count(), sqs::kMaxVisibilitySeconds)},
                     {"AttributeNames", {"ApproximateReceiveCount"}},
                     {"MessageSystemAttributeNames", {"ApproximateReceiveCount"}},
                     {"MessageAttributeNames", {"All"}}};
      auto polled =
          Poll(name, std::move(params), Millis(wait_s * 1000) + settings_.request_timeout);
      if (!polled) {
        break;  // interrupted
      }
      Result<json>& response = *polled;
      if (!response) {
        if (response.error().code == ErrorCode::kNotFound) {
          ForgetUrl(name);  // the queue was deleted (and maybe recreated with another URL)
        }
        return Unexpected(response.error());
      }
      std::vector<Message> out = ParseMessages(name, *response);
      if (!out.empty() || std::chrono::steady_clock::now() >= deadline) {
        return out;
      }
    }
    return std::vector<Message>{};
  }

  Status Publish(std::string_view queue, std::string_view body,
                 const PublishOptions& options) override {
    const std::string name(queue);
    ASYA_RETURN_IF_ERROR(sqs::ValidateQueueName(name));
    ASYA_ASSIGN_OR_RETURN(size_t bytes, sqs::ValidateMessage(body, options.headers));
    ASYA_ASSIGN_OR_RETURN(std::string url, QueueUrl(name));
    GroupCommitter::Entry entry;
    entry.bytes = bytes;
    entry.request = {{"MessageBody", std::string(body)}};
    if (options.delay.count() > 0) {
      if (options.delay > Millis(sqs::kMaxDelaySeconds * 1000LL)) {
        log::Debug("SQS delay capped at 900 s",
                   {{"queue", name}, {"delay_ms", static_cast<long long>(options.delay.count())}});
      }
      entry.request["DelaySeconds"] = CeilSeconds(options.delay.count(), sqs::kMaxDelaySeconds);
    }
    if (!options.headers.empty()) {
      json attributes = json::object();
      for (const auto& [key, value] : options.headers) {
        attributes[key] = {{"DataType", "String"}, {"StringValue", value}};
      }
      entry.request["MessageAttributes"] = std::move(attributes);
    }
    return WithQueue(name, sends_.Submit(url, std::move(entry)));
  }

  Status Ack(const Message& message) override {
    ASYA_ASSIGN_OR_RETURN(std::string url, QueueUrl(message.queue));
    GroupCommitter::Entry entry;
    entry.request = {{"ReceiptHandle", message.receipt}};
    return WithQueue(message.queue, deletes_.Submit(url, std::move(entry)));
  }

  Status Nack(const Message& message, Millis delay) override {
    return ChangeVisibility(message, CeilSeconds(delay.count(), sqs::kMaxVisibilitySeconds));
  }

  Status ExtendVisibility(const Message& message, Millis visibility) override {
    return ChangeVisibility(message, CeilSeconds(visibility.count(), sqs::kMaxVisibilitySeconds));
  }

  void Interrupt() override {
    cancel_.Cancel();
    { std::lock_guard lock(poll_mu_); }
    poll_done_cv_.notify_all();
    std::lock_guard lock(sleep_mu_);
    sleep_cv_.notify_all();
  }

  // Waits until no ReceiveMessage is running (each ends within its WaitTimeSeconds) and the
  // messages of abandoned polls were made visible again. Polls not yet sent are never sent.
  void Quiesce(Millis max_wait) override {
    std::unique_lock lock(poll_mu_);
    if (polls_running_ == 0) {
      return;
    }
    log::Info("waiting for SQS long polls in flight to end",
              {{"polls", static_cast<long long>(polls_running_)},
               {"max_wait_ms", static_cast<long long>(max_wait.count())}});
    if (!poll_done_cv_.wait_for(lock, max_wait, [&] { return polls_running_ == 0; })) {
      log::Warn(
          "SQS long polls still running; a message they take stays hidden until its "
          "visibility timeout",
          {{"polls", static_cast<long long>(polls_running_)}});
    }
  }

  Status CreateQueue(std::string_view queue, const QueueOptions& options) override {
    const std::string name(queue);
    ASYA_RETURN_IF_ERROR(sqs::ValidateQueueName(name));
    json attributes = json::object();
    if (options.visibility.count() > 0) {
      attributes["VisibilityTimeout"] =
          std::to_string(CeilSeconds(options.visibility.count(), sqs::kMaxVisibilitySeconds));
    }
    int max_receive = settings_.redrive_max_receive_count;
    for (const auto& [key, value] : options.attributes) {
      if (key == "maxReceiveCount") {
        try {
          max_receive = std::stoi(value);
        } catch (const std::exception&) {
          return MakeError(ErrorCode::kInvalidArgument,
                           "maxReceiveCount '" + value + "' is not an integer");
        }
      } else {
        attributes[key] = value;
      }
    }
    if (options.create_dlq) {
      const std::string dlq = name + "-dlq";
      ASYA_RETURN_IF_ERROR(sqs::ValidateQueueName(dlq));
      ASYA_ASSIGN_OR_RETURN(std::string dlq_url, CreateOne(dlq, json::object()));
      if (max_receive > 0) {
        ASYA_ASSIGN_OR_RETURN(json arn,
                              Call("GetQueueAttributes",
                                   {{"QueueUrl", dlq_url}, {"AttributeNames", {"QueueArn"}}}, dlq));
        json policy = {{"deadLetterTargetArn", Str(Field(arn, "Attributes"), "QueueArn")},
                       {"maxReceiveCount", std::to_string(max_receive)}};
        attributes["RedrivePolicy"] = policy.dump();
      }
    }
    return CreateOne(name, attributes).transform([](const std::string&) {});
  }

  Status DeleteQueue(std::string_view queue) override {
    const std::string name(queue);
    auto url = QueueUrl(name);
    if (!url) {
      return url.error().code == ErrorCode::kNotFound ? Ok() : Unexpected(url.error());
    }
    auto deleted = Call("DeleteQueue", {{"QueueUrl", *url}}, name);
    ForgetUrl(name);
    if (!deleted && deleted.error().code != ErrorCode::kNotFound) {
      return Unexpected(deleted.error());
    }
    return Ok();
  }

  Result<bool> QueueExists(std::string_view queue) override {
    const std::string name(queue);
    ASYA_RETURN_IF_ERROR(sqs::ValidateQueueName(name));
    ForgetUrl(name);
    auto url = QueueUrl(name);
    if (url) {
      return true;
    }
    if (url.error().code == ErrorCode::kNotFound) {
      return false;
    }
    return Unexpected(url.error());
  }

  Result<QueueDepth> Depth(std::string_view queue) override {
    const std::string name(queue);
    ASYA_ASSIGN_OR_RETURN(std::string url, QueueUrl(name));
    auto response = Call("GetQueueAttributes",
                         {{"QueueUrl", url},
                          {"AttributeNames",
                           {"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                            "ApproximateNumberOfMessagesDelayed"}}},
                         name);
    if (!response) {
      if (response.error().code == ErrorCode::kNotFound) {
        ForgetUrl(name);
      }
      return Unexpected(response.error());
    }
    const json& attributes = Field(*response, "Attributes");
    auto number = [&](const char* key) { return Int(attributes, key, 0); };
    QueueDepth depth;
    depth.ready = number("ApproximateNumberOfMessages");
    depth.inflight = number("ApproximateNumberOfMessagesNotVisible") +
                     number("ApproximateNumberOfMessagesDelayed");
    return depth;
  }

  Result<std::vector<std::string>> ListQueues() override {
    std::vector<std::string> names;
    std::string token;
    do {
      json params = {{"MaxResults", 1000}};
      if (!settings_.list_prefix.empty()) {
        params["QueueNamePrefix"] = settings_.list_prefix;
      }
      if (!token.empty()) {
        params["NextToken"] = token;
      }
      ASYA_ASSIGN_OR_RETURN(json response, Call("ListQueues", params, ""));
      for (const auto& url : Field(response, "QueueUrls")) {
        if (url.is_string()) {
          names.push_back(sqs::QueueNameFromUrl(url.get<std::string>()));
        }
      }
      token = Str(response, "NextToken");
    } while (!token.empty());
    std::sort(names.begin(), names.end());
    return names;
  }

  Status Purge(std::string_view queue) override {
    const std::string name(queue);
    ASYA_ASSIGN_OR_RETURN(std::string url, QueueUrl(name));
    return Call("PurgeQueue", {{"QueueUrl", url}}, name).transform([](const json&) {});
  }

 private:
  // ---- one API call ----
  // Signs and sends `action`; retries kUnavailable up to `attempts` times (100 ms, 400 ms, ...).
  Result<json> Call(const std::string& action, const json& params, const std::string& queue,
                    aws::CancelToken* cancel = nullptr, Millis timeout = Millis(0),
                    int attempts = 3) {
    Result<json> result = MakeError(ErrorCode::kInternal, "not called");
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      result = CallOnce(action, params, queue, cancel, timeout);
      if (result || result.error().code != ErrorCode::kUnavailable || attempt == attempts) {
        break;
      }
      log::Warn("SQS call failed; retrying",
                {{"action", action}, {"attempt", attempt}, {"error", result.error().message}});
      std::this_thread::sleep_for(Millis(100) * (1 << (2 * (attempt - 1))));
    }
    return result;
  }

  Result<json> CallOnce(const std::string& action, const json& params, const std::string& queue,
                        aws::CancelToken* cancel, Millis timeout) {
    auto credentials = credentials_->Get();
    if (!credentials) {
      return MakeError(
          credentials.error().code,
          "SQS " + action + ": cannot get AWS credentials: " + credentials.error().message);
    }
    aws::HttpRequest request;
    request.method = "POST";
    request.url = settings_.endpoint;
    request.timeout = timeout.count() > 0 ? timeout : settings_.request_timeout;
    request.body = params.dump(-1, ' ', false, json::error_handler_t::replace);
    request.headers = {{"Host", host_},
                       {"Content-Type", std::string(kJsonContentType)},
                       {"X-Amz-Target", "AmazonSQS." + action}};
    aws::SigningRequest to_sign{"POST", "/", {}, request.headers, request.body};
    aws::Signature signature = aws::Sign(
        to_sign, *credentials, {settings_.region, "sqs", std::chrono::system_clock::now()});
    for (auto& header : signature.added_headers) {
      request.headers.push_back(std::move(header));
    }
    auto response = aws::Perform(request, cancel);
    if (!response) {
      return MakeError(response.error().code,
                       "SQS " + action + " failed: " + response.error().message);
    }
    if (response->status != 200) {
      sqs::ServiceError error = sqs::ParseServiceError(response->status, response->body,
                                                       response->Header("x-amzn-query-error"));
      ErrorCode code = sqs::MapServiceError(response->status, error.code);
      if (sqs::IsCredentialError(error.code)) {
        credentials_->Invalidate();
      }
      std::string what = code == ErrorCode::kNotFound && !queue.empty()
                             ? "queue '" + queue + "' does not exist"
                             : error.code + (error.message.empty() ? "" : ": " + error.message);
      if (code == ErrorCode::kPermissionDenied) {
        what = "credentials rejected (" + credentials->source + "): " + what;
      }
      return MakeError(code, "SQS " + action + (queue.empty() ? "" : " on '" + queue + "'") +
                                 " failed: " + what);
    }
    if (response->body.empty()) {
      return json::object();
    }
    json doc = json::parse(response->body, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
      return MakeError(ErrorCode::kInternal, "SQS " + action + ": unexpected response from " +
                                                 settings_.endpoint + ": " +
                                                 response->body.substr(0, 200));
    }
    return doc;
  }

  // ---- batches ----
  std::vector<Status> SendBatch(const std::string& action, const std::string& url,
                                const std::vector<const GroupCommitter::Entry*>& entries) {
    json batch = json::array();
    for (size_t i = 0; i < entries.size(); ++i) {
      json entry = entries[i]->request;
      entry["Id"] = std::to_string(i);
      batch.push_back(std::move(entry));
    }
    auto response = Call(action, {{"QueueUrl", url}, {"Entries", std::move(batch)}},
                         sqs::QueueNameFromUrl(url));
    std::vector<Status> out(entries.size(), Ok());
    if (!response) {
      std::fill(out.begin(), out.end(), Status(Unexpected(response.error())));
      return out;
    }
    std::vector<bool> succeeded(entries.size(), false);
    for (const auto& ok : Field(*response, "Successful")) {
      auto id = static_cast<size_t>(Int(ok, "Id", -1));
      if (id < entries.size()) {
        succeeded[id] = true;
      }
    }
    for (const auto& failed : Field(*response, "Failed")) {
      auto id = static_cast<size_t>(Int(failed, "Id", -1));
      if (id < entries.size()) {
        std::string code = Str(failed, "Code");
        out[id] =
            MakeError(sqs::MapServiceError(400, code),
                      "SQS " + action + " entry failed: " + code + ": " + Str(failed, "Message"));
        succeeded[id] = true;  // has its own result
      }
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      if (!succeeded[i]) {
        out[i] = MakeError(ErrorCode::kInternal, "SQS " + action + " returned no result for entry");
      }
    }
    return out;
  }

  // ---- long polls ----
  // A ReceiveMessage long poll runs on a poller thread; the caller waits for its result or for
  // Interrupt(). An interrupted caller returns at once and the poll runs to its end (aborting it
  // would not stop SQS: a poll whose connection is gone still takes messages and hides them for
  // the visibility timeout). Messages an abandoned poll receives are made visible again at once.
  // Returns nullopt when interrupted.
  struct PollJob {
    std::string queue;
    json params;
    Millis timeout;
    std::optional<Result<json>> result;
    bool abandoned = false;
  };

  std::optional<Result<json>> Poll(const std::string& queue, json params, Millis timeout) {
    auto job = std::make_shared<PollJob>(PollJob{queue, std::move(params), timeout, {}, false});
    std::unique_lock lock(poll_mu_);
    if (cancel_.cancelled()) {
      return std::nullopt;
    }
    poll_jobs_.push_back(job);
    if (poll_jobs_.size() > idle_pollers_) {
      pollers_.emplace_back([this] { PollerLoop(); });
    } else {
      poll_cv_.notify_one();
    }
    poll_done_cv_.wait(lock, [&] { return job->result.has_value() || cancel_.cancelled(); });
    if (!job->result.has_value()) {
      job->abandoned = true;
      return std::nullopt;
    }
    return std::move(*job->result);
  }

  void PollerLoop() {
    std::unique_lock lock(poll_mu_);
    while (true) {
      ++idle_pollers_;
      poll_cv_.wait(lock, [&] { return stopping_ || !poll_jobs_.empty(); });
      --idle_pollers_;
      if (stopping_) {
        return;
      }
      std::shared_ptr<PollJob> job = poll_jobs_.front();
      poll_jobs_.pop_front();
      if (job->abandoned) {
        continue;
      }
      ++polls_running_;
      lock.unlock();
      auto result = Call("ReceiveMessage", job->params, job->queue, &shutdown_, job->timeout, 1);
      lock.lock();
      if (!job->abandoned) {
        job->result = std::move(result);
        --polls_running_;
        poll_done_cv_.notify_all();
        continue;
      }
      lock.unlock();
      if (result) {
        for (const Message& m : ParseMessages(job->queue, *result)) {
          auto released = ChangeVisibility(m, 0);
          log::Info("returned a message received after Interrupt() to its queue",
                    {{"queue", job->queue},
                     {"id", m.id},
                     {"ok", released ? "true" : released.error().message}});
        }
      }
      lock.lock();
      --polls_running_;
      poll_done_cv_.notify_all();
    }
  }

  // ---- messages ----
  static std::vector<Message> ParseMessages(const std::string& queue, const json& response) {
    std::vector<Message> out;
    for (const auto& m : Field(response, "Messages")) {
      Message message;
      message.queue = queue;
      message.id = Str(m, "MessageId");
      message.body = Str(m, "Body");
      message.receipt = Str(m, "ReceiptHandle");
      message.delivery_count = Int(Field(m, "Attributes"), "ApproximateReceiveCount", 1);
      message.redelivered = message.delivery_count > 1;
      const json& attributes = Field(m, "MessageAttributes");
      if (attributes.is_object()) {
        for (const auto& [key, value] : attributes.items()) {
          if (Field(value, "StringValue").is_string()) {
            message.headers[key] = Str(value, "StringValue");
          }
        }
      }
      out.push_back(std::move(message));
    }
    return out;
  }

  Status ChangeVisibility(const Message& message, int seconds) {
    ASYA_ASSIGN_OR_RETURN(std::string url, QueueUrl(message.queue));
    return Call("ChangeMessageVisibility",
                {{"QueueUrl", url},
                 {"ReceiptHandle", message.receipt},
                 {"VisibilityTimeout", seconds}},
                message.queue)
        .transform([](const json&) {});
  }

  static Status WithQueue(const std::string& queue, Status status) {
    if (!status && status.error().code == ErrorCode::kNotFound) {
      return MakeError(ErrorCode::kNotFound, "SQS queue '" + queue + "' does not exist");
    }
    return status;
  }

  // ---- queues ----
  Result<std::string> CreateOne(const std::string& name, const json& attributes) {
    json params = {{"QueueName", name}};
    if (!attributes.empty()) {
      params["Attributes"] = attributes;
    }
    auto created = Call("CreateQueue", params, name);
    if (created) {
      std::string url = sqs::RewriteQueueUrl(Str(*created, "QueueUrl"), settings_.endpoint);
      RememberUrl(name, url);
      return url;
    }
    if (created.error().code != ErrorCode::kAlreadyExists) {
      return Unexpected(created.error());
    }
    // Exists with other attributes: keep the queue, apply ours.
    ForgetUrl(name);
    ASYA_ASSIGN_OR_RETURN(std::string url, QueueUrl(name));
    ASYA_RETURN_IF_ERROR(
        Call("SetQueueAttributes", {{"QueueUrl", url}, {"Attributes", attributes}}, name));
    return url;
  }

  Result<std::string> QueueUrl(const std::string& name) {
    {
      std::lock_guard lock(urls_mu_);
      auto it = urls_.find(name);
      if (it != urls_.end()) {
        return it->second;
      }
    }
    ASYA_RETURN_IF_ERROR(sqs::ValidateQueueName(name));
    ASYA_ASSIGN_OR_RETURN(json response, Call("GetQueueUrl", {{"QueueName", name}}, name));
    std::string url = sqs::RewriteQueueUrl(Str(response, "QueueUrl"), settings_.endpoint);
    RememberUrl(name, url);
    return url;
  }

  // Resolves the URL, retrying a missing queue ASYA_QUEUE_RETRY_MAX_ATTEMPTS times with doubling
  // backoff; Interrupt() ends the wait (an empty URL then means "interrupted").
  Result<std::string> ResolveForReceive(const std::string& name) {
    Millis backoff = settings_.queue_retry_backoff;
    for (int attempt = 1;; ++attempt) {
      auto url = QueueUrl(name);
      if (url || url.error().code != ErrorCode::kNotFound ||
          attempt >= settings_.queue_retry_max_attempts || cancel_.cancelled()) {
        return url;
      }
      log::Warn("SQS queue does not exist yet; retrying",
                {{"queue", name},
                 {"attempt", attempt},
                 {"backoff_ms", static_cast<long long>(backoff.count())}});
      std::unique_lock lock(sleep_mu_);
      sleep_cv_.wait_for(lock, backoff, [this] { return cancel_.cancelled(); });
      backoff *= 2;
    }
  }

  void RememberUrl(const std::string& name, const std::string& url) {
    std::lock_guard lock(urls_mu_);
    urls_[name] = url;
  }
  void ForgetUrl(const std::string& name) {
    std::lock_guard lock(urls_mu_);
    urls_.erase(name);
  }

  const SqsSettings settings_;
  aws::CredentialProviderPtr credentials_;
  std::string host_;
  aws::CancelToken cancel_;    // Interrupt(): set once, never reset
  aws::CancelToken shutdown_;  // the destructor: aborts polls in flight
  std::mutex poll_mu_;
  std::condition_variable poll_cv_;       // a job was queued / stopping
  std::condition_variable poll_done_cv_;  // a job finished / Interrupt()
  std::deque<std::shared_ptr<PollJob>> poll_jobs_;
  std::vector<std::thread> pollers_;
  size_t idle_pollers_ = 0;
  size_t polls_running_ = 0;  // ReceiveMessage calls being sent or awaited (Quiesce)
  bool stopping_ = false;
  std::mutex sleep_mu_;
  std::condition_variable sleep_cv_;
  std::mutex urls_mu_;
  std::map<std::string, std::string> urls_;
  GroupCommitter sends_;
  GroupCommitter deletes_;
};

}  // namespace

Result<TransportPtr> MakeSqsTransport(const SqsSettings& settings) {
  SqsSettings s = settings;
  if (s.region.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "ASYA_AWS_REGION must not be empty");
  }
  if (s.endpoint.empty()) {
    s.endpoint = "https://sqs." + s.region + ".amazonaws.com";
  }
  auto url = aws::ParseUrl(s.endpoint);
  if (!url) {
    return MakeError(ErrorCode::kInvalidArgument, "SQS endpoint: " + url.error().message);
  }
  if (s.wait_time_seconds <= 0 || s.wait_time_seconds > 20) {
    s.wait_time_seconds = 20;
  }
  s.queue_retry_max_attempts = std::max(1, s.queue_retry_max_attempts);
  aws::CredentialSources sources = s.credential_sources;
  if (!s.access_key_id.empty() || !s.secret_access_key.empty()) {
    sources.access_key_id = s.access_key_id;
    sources.secret_access_key = s.secret_access_key;
    sources.session_token = s.session_token;
  }
  if (sources.region.empty()) {
    sources.region = s.region;
  }
  auto provider = std::make_shared<aws::CredentialProvider>(std::move(sources));
  // Fail at start, with the reason, rather than on the first message.
  auto credentials = provider->Get();
  if (!credentials) {
    return MakeError(credentials.error().code,
                     "SQS transport: cannot get AWS credentials: " + credentials.error().message);
  }
  return std::make_unique<SqsTransport>(std::move(s), std::move(provider));
}

}  // namespace asya::transport

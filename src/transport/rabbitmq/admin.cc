// RabbitMQ transport, queue administration on channel 2 (a failed passive declare closes only
// this channel; it is reopened on next use): CreateQueue (durable quorum queue + its -dlq, bound
// to the topic exchange with the actor name), DeleteQueue (with the holding queues this process
// made for it), QueueExists, Depth (passive declare + this process's prefetched messages; inflight
// from the management API), ListQueues and Purge. The AMQP work runs on the I/O thread.
#include "asya/base/log.h"
#include "transport/rabbitmq/rabbitmq_transport.h"

namespace asya::transport::rabbitmq {
namespace {

TableBuilder ToTable(const std::vector<QueueArgument>& arguments) {
  TableBuilder table;
  for (const QueueArgument& a : arguments) {
    if (a.is_int) {
      table.AddInt(a.key, a.number);
    } else {
      table.AddString(a.key, a.text);
    }
  }
  return table;
}

}  // namespace

Status RabbitMqTransport::CreateQueue(std::string_view queue_view, const QueueOptions& options) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue_view));
  std::string queue(queue_view);
  return Call<void>("create queue '" + queue + "'", [this, queue, options]() -> Status {
    ASYA_RETURN_IF_ERROR(DeclareQueue(queue, options));
    if (options.create_dlq) {
      QueueOptions dlq_options;
      dlq_options.create_dlq = false;
      ASYA_RETURN_IF_ERROR(DeclareQueue(queue + "-dlq", dlq_options));
    }
    return Ok();
  });
}

Status RabbitMqTransport::DeleteQueue(std::string_view queue_view) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue_view));
  std::string queue(queue_view);
  return Call<void>("delete queue '" + queue + "'", [this, queue]() -> Status {
    std::vector<std::string> names{queue};
    {
      std::lock_guard lock(mu_);
      auto it = holding_queues_.find(queue);
      if (it != holding_queues_.end()) {
        names.insert(names.end(), it->second.begin(), it->second.end());
        holding_queues_.erase(it);
      }
      known_queues_.erase(queue);
    }
    for (const std::string& name : names) {
      ASYA_RETURN_IF_ERROR(EnsureAdmin());
      amqp_queue_delete(conn_.state(), kAdminChannel, Bytes(name), 0, 0);
      Status st = conn_.CheckReply(kAdminChannel, "queue.delete '" + name + "'");
      if (!st) {
        admin_open_ = false;
        if (st.error().code != ErrorCode::kNotFound) {
          return st;
        }
      }
      holding_declared_.erase(name);
    }
    return Ok();
  });
}

Result<bool> RabbitMqTransport::QueueExists(std::string_view queue_view) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue_view));
  std::string queue(queue_view);
  return Call<bool>("check queue '" + queue + "'", [this, queue]() -> Result<bool> {
    auto ok = PassiveDeclare(queue);
    if (ok) {
      return true;
    }
    if (ok.error().code == ErrorCode::kNotFound) {
      return false;
    }
    return Unexpected(ok.error());
  });
}

Result<QueueDepth> RabbitMqTransport::Depth(std::string_view queue_view) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue_view));
  std::string queue(queue_view);
  ASYA_ASSIGN_OR_RETURN(
      QueueDepth depth,
      Call<QueueDepth>("depth of '" + queue + "'", [this, queue]() -> Result<QueueDepth> {
        ASYA_ASSIGN_OR_RETURN(amqp_queue_declare_ok_t ok, PassiveDeclare(queue));
        QueueDepth d;
        // Messages prefetched by this process but not yet handed out by Receive() are waiting to
        // be received, so they count as ready (other processes' prefetch buffers cannot be seen).
        std::lock_guard lock(mu_);
        auto it = queues_.find(queue);
        d.ready = ok.message_count +
                  (it == queues_.end() ? 0 : static_cast<int64_t>(it->second.ready.size()));
        d.inflight = -1;
        return d;
      }));
  if (management_) {
    auto stats = management_->QueueStats(queue);
    if (stats) {
      depth.inflight = stats->unacked;
      depth.exact = stats->running;
    } else {
      log::Warn("rabbitmq: management API unavailable for inflight count",
                {{"error", stats.error().message}});
    }
  }
  return depth;
}

Result<std::vector<std::string>> RabbitMqTransport::ListQueues() {
  if (management_) {
    return management_->QueueNames();
  }
  std::lock_guard lock(mu_);
  return std::vector<std::string>(known_queues_.begin(), known_queues_.end());
}

Status RabbitMqTransport::Purge(std::string_view queue_view) {
  ASYA_RETURN_IF_ERROR(ValidateQueueName(queue_view));
  std::string queue(queue_view);
  return Call<void>("purge '" + queue + "'", [this, queue]() -> Status {
    ASYA_RETURN_IF_ERROR(EnsureAdmin());
    amqp_queue_purge(conn_.state(), kAdminChannel, Bytes(queue));
    Status st = conn_.CheckReply(kAdminChannel, "queue.purge '" + queue + "'");
    if (!st) {
      admin_open_ = false;
      return st;
    }
    // Prefetched-but-not-handed-out messages count as ready (Depth), so they are purged too.
    std::vector<std::pair<amqp_channel_t, uint64_t>> drop;
    {
      std::lock_guard lock(mu_);
      auto it = queues_.find(queue);
      if (it != queues_.end()) {
        for (const Message& m : it->second.ready) {
          auto r = ParseReceipt(m.receipt);
          auto live = r ? live_.find(r->incarnation) : live_.end();
          if (live != live_.end()) {
            live->second.outstanding.erase(r->tag);
            drop.emplace_back(live->second.channel, r->tag);
          }
        }
        it->second.ready.clear();
      }
    }
    for (const auto& [channel, tag] : drop) {
      AckNow(channel, tag);
    }
    return Ok();
  });
}

Status RabbitMqTransport::EnsureAdmin() {
  if (admin_open_) {
    return Ok();
  }
  ASYA_RETURN_IF_ERROR(conn_.OpenChannel(kAdminChannel));
  admin_open_ = true;
  return Ok();
}

Result<amqp_queue_declare_ok_t> RabbitMqTransport::PassiveDeclare(const std::string& queue) {
  ASYA_RETURN_IF_ERROR(EnsureAdmin());
  amqp_queue_declare_ok_t* ok =
      amqp_queue_declare(conn_.state(), kAdminChannel, Bytes(queue), 1, 0, 0, 0, amqp_empty_table);
  Status st = conn_.CheckReply(kAdminChannel, "queue.declare (passive) '" + queue + "'");
  if (!st) {
    admin_open_ = false;
    if (st.error().code == ErrorCode::kNotFound) {
      return MakeError(ErrorCode::kNotFound, "queue '" + queue + "' does not exist");
    }
    return Unexpected(st.error());
  }
  return *ok;
}

Status RabbitMqTransport::DeclareQueue(const std::string& queue, const QueueOptions& options) {
  ASYA_RETURN_IF_ERROR(EnsureAdmin());
  TableBuilder args = ToTable(QueueArguments(options.attributes, settings_.quorum_queues));
  amqp_queue_declare(conn_.state(), kAdminChannel, Bytes(queue), 0, 1, 0, 0, args.Table());
  Status st = conn_.CheckReply(kAdminChannel, "queue.declare '" + queue + "'");
  if (!st) {
    admin_open_ = false;
    if (st.error().code != ErrorCode::kFailedPrecondition) {
      return st;
    }
    // 406 PRECONDITION_FAILED: the queue exists with other arguments (e.g. a classic queue made
    // by an older deployment). Use it as it is; delivery counting falls back to our header.
    ASYA_RETURN_IF_ERROR(PassiveDeclare(queue));
    log::Info("rabbitmq: queue exists with other arguments, using it as is",
              {{"queue", queue}, {"detail", st.error().message}});
  }
  amqp_queue_bind(conn_.state(), kAdminChannel, Bytes(queue), Bytes(settings_.exchange),
                  Bytes(RoutingKey(queue)), amqp_empty_table);
  st = conn_.CheckReply(kAdminChannel, "queue.bind '" + queue + "'");
  if (!st) {
    admin_open_ = false;
    return st;
  }
  std::lock_guard lock(mu_);
  known_queues_.insert(queue);
  return Ok();
}

Result<std::string> RabbitMqTransport::DeclareHoldingQueue(const std::string& queue, int64_t ms) {
  const bool quorum = settings_.quorum_queues && !classic_holding_;
  std::string hold = quorum ? HoldingQueueName(queue, ms) : ClassicHoldingQueueName(queue, ms);
  if (holding_declared_.count(hold) != 0) {
    return hold;
  }
  ASYA_RETURN_IF_ERROR(PassiveDeclare(queue));  // never make a holding queue for a missing queue
  // Does the holding queue exist already (declared by this or another process)?
  bool created_here = false;
  if (quorum) {
    auto exists = PassiveDeclare(hold);
    if (!exists && exists.error().code != ErrorCode::kNotFound) {
      return Unexpected(exists.error());
    }
    created_here = !exists;
  }
  ASYA_RETURN_IF_ERROR(EnsureAdmin());
  TableBuilder args =
      ToTable(quorum ? HoldingQueueArguments(queue, ms) : ClassicHoldingQueueArguments(queue, ms));
  amqp_queue_declare(conn_.state(), kAdminChannel, Bytes(hold), 0, 1, 0, 0, args.Table());
  Status st = conn_.CheckReply(kAdminChannel, "queue.declare '" + hold + "'");
  if (!st) {
    admin_open_ = false;
    if (quorum && st.error().code == ErrorCode::kFailedPrecondition) {
      // 406: the broker refuses a quorum queue with a TTL and at-least-once dead-lettering
      // (RabbitMQ < 3.10). Fall back to the classic holding queues of earlier versions, which
      // can lose a delayed message when the broker crashes; say so once.
      log::Warn(
          "rabbitmq: broker refused a quorum holding queue (needs RabbitMQ >= 3.10); delayed "
          "messages wait in classic queues, which a broker crash can lose",
          {{"queue", hold}, {"detail", st.error().message}});
      classic_holding_ = true;
      return DeclareHoldingQueue(queue, ms);
    }
    return Unexpected(st.error());
  }
  if (created_here && settings_.holding_queue_settle.count() > 0) {
    // RabbitMQ 3.10.8 (Ra 2.2.0; fixed upstream by rabbitmq/ra#443, 2024) writes a new quorum
    // queue's Raft member registration to disk only on its next auto-save (every 500 ms). A broker
    // killed before that restarts the queue as a new, empty member: everything confirmed into it is
    // gone (measured: the whole last-created delay bucket, docs/reliability.md). So nothing goes
    // into a holding queue this process just created until the broker has saved it.
    SleepInterruptibly(settings_.holding_queue_settle);
  }
  holding_declared_.insert(hold);
  std::lock_guard lock(mu_);
  holding_queues_[queue].insert(hold);
  return hold;
}

}  // namespace asya::transport::rabbitmq

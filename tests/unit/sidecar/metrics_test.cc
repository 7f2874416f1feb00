#include "asya/sidecar/metrics.h"

#include <string>

#include <gtest/gtest.h>

namespace asya::sidecar {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(Metrics, RendersBuiltinsWithNamesLabelsAndBuckets) {
  Metrics m({"asya_actor", "echo", "sqlite"});
  m.Received(150);
  m.Received(5000);
  m.Processed("success");
  m.Sent("asya-next", "routing", 120);
  m.Failed("parse_error");
  m.RuntimeError();
  m.RuntimeDuration(0.003);
  m.RuntimeDuration(0.005);   // exactly on a bound: counted in le="0.005"
  m.ProcessingDuration(200);  // above every bound: only +Inf
  m.ActiveAdd(1);
  const std::string t = m.Render();
  EXPECT_TRUE(Has(t, "# TYPE asya_actor_messages_received_total counter"));
  EXPECT_TRUE(Has(t, R"(asya_actor_messages_received_total{queue="echo",transport="sqlite"} 2)"));
  EXPECT_TRUE(Has(t, R"(asya_actor_messages_processed_total{queue="echo",status="success"} 1)"));
  EXPECT_TRUE(Has(
      t,
      R"(asya_actor_messages_sent_total{destination_queue="asya-next",message_type="routing"} 1)"));
  EXPECT_TRUE(Has(t, R"(asya_actor_messages_failed_total{queue="echo",reason="parse_error"} 1)"));
  EXPECT_TRUE(
      Has(t, R"(asya_actor_runtime_errors_total{queue="echo",error_type="execution_error"} 1)"));
  EXPECT_TRUE(Has(t, "# TYPE asya_actor_runtime_execution_duration_seconds histogram"));
  EXPECT_TRUE(
      Has(t, R"(asya_actor_runtime_execution_duration_seconds_bucket{queue="echo",le="0.005"} 2)"));
  EXPECT_TRUE(
      Has(t, R"(asya_actor_runtime_execution_duration_seconds_bucket{queue="echo",le="+Inf"} 2)"));
  EXPECT_TRUE(Has(t, R"(asya_actor_runtime_execution_duration_seconds_count{queue="echo"} 2)"));
  EXPECT_TRUE(Has(t, R"(asya_actor_processing_duration_seconds_bucket{queue="echo",le="120"} 0)"));
  EXPECT_TRUE(Has(t, R"(asya_actor_processing_duration_seconds_bucket{queue="echo",le="+Inf"} 1)"));
  EXPECT_TRUE(Has(t, R"(asya_actor_envelope_size_bytes_bucket{direction="received",le="1000"} 1)"));
  EXPECT_TRUE(
      Has(t, R"(asya_actor_envelope_size_bytes_bucket{direction="received",le="10000"} 2)"));
  EXPECT_TRUE(Has(t, R"(asya_actor_envelope_size_bytes_bucket{direction="sent",le="1e+09"} 1)"));
  EXPECT_TRUE(Has(t, R"(asya_actor_envelope_size_bytes_bucket{direction="sent",le="100000"} 1)"));
  EXPECT_TRUE(Has(t, R"(asya_actor_envelope_size_bytes_sum{direction="received"} 5150)"));
  EXPECT_TRUE(Has(t, R"(asya_actor_runtime_execution_duration_seconds_sum{queue="echo"} 0.008)"));
  EXPECT_TRUE(Has(t, "asya_actor_active_messages 1"));
  EXPECT_TRUE(Has(t, "# TYPE asya_actor_queue_receive_duration_seconds histogram"));
}

TEST(Metrics, NamespaceAndLabelEscaping) {
  Metrics m({"custom_ns", "we\"ird\\actor", "rabbitmq"});
  m.Processed("end_consumed");
  const std::string t = m.Render();
  EXPECT_TRUE(Has(
      t, R"(custom_ns_messages_processed_total{queue="we\"ird\\actor",status="end_consumed"} 1)"));
  EXPECT_EQ(t.find("asya_actor_"), std::string::npos);
}

TEST(Metrics, CustomMetricsRegistered) {
  Metrics m({"asya_actor", "a", "sqlite"});
  auto st = m.RegisterCustom(R"([
    {"name":"tokens-used","type":"counter","help":"Tokens","labels":["model"]},
    {"name":"9lives","type":"gauge"},
    {"name":"latency","type":"histogram","buckets":[1,0.5]},
    {"name":"odd","type":"summary"}])");
  ASSERT_TRUE(st.has_value()) << st.error().message;
  const std::string t = m.Render();
  EXPECT_TRUE(Has(t, "# TYPE tokens_used counter"));
  EXPECT_TRUE(Has(t, "# HELP tokens_used Tokens"));
  EXPECT_TRUE(Has(t, "# TYPE _9lives gauge"));
  EXPECT_TRUE(Has(t, "# TYPE latency histogram"));
  EXPECT_EQ(t.find("odd"), std::string::npos);  // unknown type: skipped with a warning
}

TEST(Metrics, CustomMetricsErrors) {
  for (const char* bad : {"[{", "{}", R"([{"type":"counter"}])", R"([{"name":""}])",
                          R"([{"name":"x","type":"counter","labels":"model"}])",
                          R"([{"name":"x","type":"counter","labels":["bad-label"]}])",
                          R"([{"name":"x","type":"histogram","buckets":["a"]}])",
                          R"([{"name":"x","type":"counter"},{"name":"x","type":"gauge"}])",
                          R"([{"name":"asya_actor_active_messages","type":"gauge"}])"}) {
    Metrics m({"asya_actor", "a", "sqlite"});
    auto st = m.RegisterCustom(bad);
    ASSERT_FALSE(st.has_value()) << bad;
    EXPECT_NE(st.error().message.find("ASYA_CUSTOM_METRICS"), std::string::npos);
  }
}

TEST(Metrics, SanitizeName) {
  EXPECT_EQ(Metrics::SanitizeName("a.b-c:d"), "a_b_c:d");
  EXPECT_EQ(Metrics::SanitizeName("1x"), "_1x");
  EXPECT_EQ(Metrics::SanitizeName("ok_name"), "ok_name");
}

}  // namespace
}  // namespace asya::sidecar

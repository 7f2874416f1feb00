// ParseRabbitMqUrl (asya/transport/rabbitmq.h), without a broker.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "asya/transport/rabbitmq.h"

namespace asya::transport {
namespace {

TEST(RabbitMqUrl, ParsesTheForms) {
  auto a = ParseRabbitMqUrl("amqp://u%40x:p%3Aw@rabbit:5673/");
  ASSERT_TRUE(a.has_value()) << a.error().ToString();
  EXPECT_EQ(a->user, "u@x");
  EXPECT_EQ(a->password, "p:w");
  EXPECT_EQ(a->host, "rabbit");
  EXPECT_EQ(a->port, 5673);
  EXPECT_EQ(a->vhost, "/");
  EXPECT_FALSE(a->tls);
  EXPECT_TRUE(a->verify);
  auto b = ParseRabbitMqUrl("amqps://h/%2F?verify=false");
  ASSERT_TRUE(b.has_value()) << b.error().ToString();
  EXPECT_TRUE(b->tls);
  EXPECT_EQ(b->port, 5671);
  EXPECT_EQ(b->vhost, "/");
  EXPECT_FALSE(b->verify);
  auto c = ParseRabbitMqUrl("amqp://h/prod");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_EQ(c->vhost, "prod");
  EXPECT_EQ(c->user, "guest");
  EXPECT_EQ(c->password, "guest");
  EXPECT_EQ(c->port, 5672);
}

TEST(RabbitMqUrl, EmptyPathIsTheDefaultVhost) {  // DESIGN §4 precise 7
  for (const char* url : {"amqp://h", "amqp://h/", "amqp://h/%2F", "amqp://h:5672"}) {
    auto ep = ParseRabbitMqUrl(url);
    ASSERT_TRUE(ep.has_value()) << url << ": " << ep.error().ToString();
    EXPECT_EQ(ep->vhost, "/") << url;
  }
}

TEST(RabbitMqUrl, UserWithoutPasswordAndIpv6Hosts) {
  auto a = ParseRabbitMqUrl("amqp://alice@h/");
  ASSERT_TRUE(a.has_value()) << a.error().ToString();
  EXPECT_EQ(a->user, "alice");
  EXPECT_EQ(a->password, "");
  auto b = ParseRabbitMqUrl("amqp://[::1]:5680/v");
  ASSERT_TRUE(b.has_value()) << b.error().ToString();
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 5680);
  EXPECT_EQ(b->vhost, "v");
  auto c = ParseRabbitMqUrl("amqps://h?verify=false&verify=true");
  ASSERT_TRUE(c.has_value()) << c.error().ToString();
  EXPECT_TRUE(c->verify);  // the last one wins
}

TEST(RabbitMqUrl, MalformedUrlsAreClearErrors) {
  struct Case {
    const char* url;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {"", "scheme must be amqp:// or amqps://"},
           {"http://h/", "scheme must be amqp:// or amqps://"},
           {"amqp://", "host is empty"},
           {"amqp://u:p@/v", "host is empty"},
           {"amqp://h:/", "port '' is not a number"},
           {"amqp://h:56x2/", "port '56x2' is not a number"},
           {"amqp://h:0/", "port 0 is out of range"},
           {"amqp://h:65536/", "port 65536 is out of range"},
           {"amqp://[::1/", "unterminated IPv6 address"},
           {"amqp://[::1]x/", "junk after IPv6 address"},
           {"amqp://h/?heartbeat=5", "unknown query parameter 'heartbeat=5'"},
           {"amqp://u%zz:p@h/", "bad percent-escape in the user name"},
           {"amqp://u:p%4@h/", "bad percent-escape in the password"},
           {"amqp://h/v%2", "bad percent-escape in the vhost"},
       }) {
    auto ep = ParseRabbitMqUrl(c.url);
    ASSERT_FALSE(ep.has_value()) << "accepted '" << c.url << "'";
    EXPECT_EQ(ep.error().code, ErrorCode::kInvalidArgument) << c.url;
    EXPECT_NE(ep.error().message.find(c.message), std::string::npos)
        << c.url << ": " << ep.error().message;
  }
}

}  // namespace
}  // namespace asya::transport

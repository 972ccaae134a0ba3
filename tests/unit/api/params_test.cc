#include "gridd/api/params.h"

#include <gtest/gtest.h>

#include "gridd/common/error.h"

namespace gridd::api {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

TEST(ParamsTest, KeepsRepeatedKeysInOrder) {
  Params params = Params::ParseUrlEncoded("a=1&b=2&a=3");
  EXPECT_EQ(params.pairs(), (Pairs{{"a", "1"}, {"b", "2"}, {"a", "3"}}));
  EXPECT_EQ(params.Get("a"), "1");
  EXPECT_EQ(params.GetAll("a"), (std::vector<std::string>{"1", "3"}));
  EXPECT_TRUE(params.Has("b"));
  EXPECT_FALSE(params.Has("c"));
  EXPECT_EQ(params.Get("c"), std::nullopt);
  EXPECT_TRUE(params.GetAll("c").empty());
}

TEST(ParamsTest, PlusAndPercentTwentyAreSpaces) {
  Params params = Params::ParseUrlEncoded("name=my+server&description=a%20b&p%2Bq=1%2B1");
  EXPECT_EQ(params.Get("name"), "my server");
  EXPECT_EQ(params.Get("description"), "a b");
  EXPECT_EQ(params.Get("p+q"), "1+1");
}

TEST(ParamsTest, DecodesEscapesAndUtf8) {
  Params params = Params::ParseUrlEncoded("x=%C3%A9t%C3%A9&y=a%26b%3Dc&z=%2f");
  EXPECT_EQ(params.Get("x"), "\xC3\xA9t\xC3\xA9");
  EXPECT_EQ(params.Get("y"), "a&b=c");
  EXPECT_EQ(params.Get("z"), "/");
}

TEST(ParamsTest, EmptyValuesAndKeysWithoutValue) {
  Params params = Params::ParseUrlEncoded("a=&b&c=3&&d=");
  EXPECT_EQ(params.pairs(), (Pairs{{"a", ""}, {"b", ""}, {"c", "3"}, {"d", ""}}));
  EXPECT_TRUE(Params::ParseUrlEncoded("").pairs().empty());
}

TEST(ParamsTest, KeysWithDotsAndIndexes) {
  Params params = Params::ParseUrlEncoded(
      "realiplist.0.ip=10.0.0.1&realiplist.0.port=80&realiplist.1.ip=10.0.0.2&"
      "virtualip.ip=192.168.0.1");
  EXPECT_EQ(params.Get("realiplist.0.ip"), "10.0.0.1");
  EXPECT_EQ(params.Get("realiplist.0.port"), "80");
  EXPECT_EQ(params.Get("realiplist.1.ip"), "10.0.0.2");
  EXPECT_EQ(params.Get("virtualip.ip"), "192.168.0.1");
}

TEST(ParamsTest, ValueMayContainEqualsSign) {
  Params params = Params::ParseUrlEncoded("data=a=b=c");
  EXPECT_EQ(params.Get("data"), "a=b=c");
}

TEST(ParamsTest, ToleratesUnescapedPunctuation) {
  Params params = Params::ParseUrlEncoded("filter=a|b&json={\"x\":[1]}");
  EXPECT_EQ(params.Get("filter"), "a|b");
  EXPECT_EQ(params.Get("json"), "{\"x\":[1]}");
}

TEST(ParamsTest, MalformedEscapesAreIllegalArguments) {
  for (const char* text : {"a=%zz", "a=%2", "a=%", "%zz=1", "a=1&b=x%g1"}) {
    try {
      Params::ParseUrlEncoded(text);
      ADD_FAILURE() << "no error for " << text;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.error_class(), ErrorClass::kIllegalArgument) << text;
      EXPECT_NE(std::string(e.what()).find("Malformed parameter encoding"), std::string::npos)
          << e.what();
    }
  }
}

TEST(ParamsTest, FromRequestMergesQueryThenBody) {
  Params params = Params::FromRequest("/api/grid/server/add?name=web1&a=q",
                                      "application/x-www-form-urlencoded", "a=b1&image=x+y");
  EXPECT_EQ(params.pairs(), (Pairs{{"name", "web1"}, {"a", "q"}, {"a", "b1"}, {"image", "x y"}}));
  EXPECT_EQ(params.Get("a"), "q");
}

TEST(ParamsTest, FromRequestAcceptsContentTypeVariants) {
  for (const char* type :
       {"application/x-www-form-urlencoded; charset=UTF-8", "Application/X-WWW-Form-URLEncoded",
        " application/x-www-form-urlencoded", ""}) {
    Params params = Params::FromRequest("/api/x", type, "k=v");
    EXPECT_EQ(params.Get("k"), "v") << "content type '" << type << "'";
  }
}

TEST(ParamsTest, FromRequestIgnoresOtherBodies) {
  for (const char* type : {"application/json", "text/plain", "multipart/form-data; boundary=x",
                           "application/x-www-form-urlencodedx"}) {
    Params params = Params::FromRequest("/api/x?q=1", type, "k=v");
    EXPECT_EQ(params.pairs(), (Pairs{{"q", "1"}})) << "content type '" << type << "'";
  }
}

TEST(ParamsTest, FromRequestWithoutQueryOrBody) {
  EXPECT_TRUE(Params::FromRequest("/api/x", "", "").pairs().empty());
  EXPECT_TRUE(Params::FromRequest("/api/x?", "", "").pairs().empty());
  EXPECT_EQ(Params::FromRequest("/api/x", "", "k=v\r\n").Get("k"), "v");
}

TEST(ParamsTest, FromRequestRejectsMalformedBody) {
  EXPECT_THROW(Params::FromRequest("/api/x?a=1", "", "b=%zz"), ApiError);
  EXPECT_THROW(Params::FromRequest("/api/x?a=%zz", "", ""), ApiError);
}

TEST(ParamsTest, PathOf) {
  EXPECT_EQ(PathOf("/api/grid/server/list?api_key=k&sig=s"), "/api/grid/server/list");
  EXPECT_EQ(PathOf("/api/grid/server/list"), "/api/grid/server/list");
  EXPECT_EQ(PathOf("/?"), "/");
  EXPECT_EQ(PathOf(""), "");
}

TEST(ParamsTest, AddAppends) {
  Params params(Pairs{{"a", "1"}});
  params.Add("a", "2");
  EXPECT_EQ(params.GetAll("a"), (std::vector<std::string>{"1", "2"}));
}

}  // namespace
}  // namespace gridd::api

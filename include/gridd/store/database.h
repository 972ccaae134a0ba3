// A small RAII layer over SQLite's C API. Every statement is prepared once per connection and
// reused; values are only ever bound, never spliced into SQL text.
//
// Concurrency: one writer connection, serialized by a mutex, runs every write transaction with
// BEGIN IMMEDIATE; readers use a pool of connections and, in WAL mode, never wait for writers.
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace gridd::store {

class StoreError : public std::runtime_error {
 public:
  StoreError(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// A cached prepared statement in use. Resetting it when the handle goes out of scope ends its
// read, so a finished query never pins an old snapshot of the database.
class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement() {
    if (stmt_ != nullptr) sqlite3_reset(stmt_);
  }
  Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
    other.stmt_ = nullptr;
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement& operator=(Statement&&) = delete;

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, bool value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, double value);
  Statement& Bind(int index, std::string_view value);
  Statement& Bind(int index, const char* value) { return Bind(index, std::string_view(value)); }
  Statement& Bind(int index, const std::string& value) {
    return Bind(index, std::string_view(value));
  }
  Statement& BindBlob(int index, std::string_view value);
  Statement& BindNull(int index);
  template <typename T>
  Statement& Bind(int index, const std::optional<T>& value) {
    return value ? Bind(index, *value) : BindNull(index);
  }

  // Advances to the next row; false when done. Throws StoreError on failure.
  bool Step();
  // Runs a statement that returns no rows.
  void Run() {
    while (Step()) {
    }
  }

  bool IsNull(int column) const;
  int64_t Int(int column) const;
  double Double(int column) const;
  std::string Text(int column) const;
  std::string Blob(int column) const;
  std::optional<int64_t> OptionalInt(int column) const;
  std::optional<std::string> OptionalText(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class Connection {
 public:
  // Opens (creating if needed) the database file. ":memory:" gives a private in-memory database.
  // While a connection of this process has the file open, other processes cannot open it
  // ("database is locked").
  explicit Connection(const std::string& path);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs SQL text without parameters (schema, pragmas); several statements may follow each
  // other.
  void Exec(std::string_view sql);
  // Runs one statement without parameters through the statement cache (transaction control,
  // which every read and write runs).
  void ExecCached(std::string_view sql) { Prepare(sql).Run(); }
  // Returns the cached prepared statement for this SQL text, reset and with bindings cleared.
  Statement Prepare(std::string_view sql);
  int64_t LastInsertId() const;
  int Changes() const;
  sqlite3* handle() { return db_; }

 private:
  // Looked up by the caller's text without copying it.
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*, TextHash, std::equal_to<>> statements_;
};

class Database {
 public:
  // Opens the database at `path` with WAL, foreign keys and a busy timeout, and applies the
  // pending migrations. ":memory:" uses one shared connection for reads and writes.
  explicit Database(const std::string& path, int reader_connections = 4);
  ~Database();

  // Runs fn(Connection&) inside BEGIN IMMEDIATE … COMMIT; rolls back when fn throws. Called
  // again from inside fn (on the same thread), it runs within the enclosing transaction under a
  // SAVEPOINT.
  template <typename F>
  auto Write(F&& fn) -> decltype(fn(std::declval<Connection&>())) {
    return WriteTransaction(/*reads_join=*/false, std::forward<F>(fn));
  }

  // Like Write, but every Write and Read that fn makes on this thread joins the transaction
  // (reads see its changes), so several services' changes commit as one, or not at all.
  template <typename F>
  auto Atomic(F&& fn) -> decltype(fn(std::declval<Connection&>())) {
    return WriteTransaction(/*reads_join=*/true, std::forward<F>(fn));
  }

  // Runs fn(Connection&) inside a read transaction (a consistent snapshot), which sees only
  // committed data, except inside Atomic on the same thread.
  template <typename F>
  auto Read(F&& fn) -> decltype(fn(std::declval<Connection&>())) {
    if (readers_.empty() || ReadsJoinWriter()) return Write(std::forward<F>(fn));
    ReaderLease lease(*this);
    return Transaction(*lease.connection, "BEGIN", "COMMIT", "ROLLBACK", std::forward<F>(fn));
  }

  // Writes a consistent copy of the whole database to `destination` (replaced atomically,
  // mode 0600) with SQLite's online backup API, while other connections keep reading and
  // writing. Throws StoreError naming the file on failure.
  void BackupTo(const std::filesystem::path& destination);

  int schema_version() const { return schema_version_; }

 private:
  struct ReaderLease {
    explicit ReaderLease(Database& db);
    ~ReaderLease();
    Database& db;
    Connection* connection;
  };

  // Marks the writer as held by the current thread for the scope's lifetime.
  struct WriterScope {
    WriterScope(Database& db, bool reads_join);
    ~WriterScope();
    Database* previous;
    bool previous_reads_join;
  };
  bool HoldsWriter() const;
  bool ReadsJoinWriter() const;
  template <typename F>
  auto WriteTransaction(bool reads_join, F&& fn) -> decltype(fn(std::declval<Connection&>())) {
    if (HoldsWriter()) return Nested(std::forward<F>(fn));
    std::lock_guard<std::mutex> lock(writer_mutex_);
    WriterScope scope(*this, reads_join);
    return Transaction(*writer_, "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK", std::forward<F>(fn));
  }
  template <typename F>
  auto Nested(F&& fn) -> decltype(fn(std::declval<Connection&>())) {
    return Transaction(*writer_, "SAVEPOINT nested_write", "RELEASE nested_write",
                       "ROLLBACK TO nested_write; RELEASE nested_write", std::forward<F>(fn));
  }

  // Runs fn(connection) between `begin` and `commit` (single statements); when fn throws, runs
  // `rollback` and rethrows.
  template <typename F>
  static auto Transaction(Connection& connection, const char* begin, const char* commit,
                          const char* rollback, F&& fn) -> decltype(fn(connection)) {
    connection.ExecCached(begin);
    try {
      if constexpr (std::is_void_v<decltype(fn(connection))>) {
        fn(connection);
        connection.ExecCached(commit);
      } else {
        auto result = fn(connection);
        connection.ExecCached(commit);
        return result;
      }
    } catch (...) {
      connection.Exec(rollback);
      throw;
    }
  }

  std::string path_;
  std::unique_ptr<Connection> writer_;
  std::mutex writer_mutex_;
  std::vector<std::unique_ptr<Connection>> readers_;
  std::vector<Connection*> free_readers_;
  std::mutex readers_mutex_;
  std::condition_variable reader_available_;
  int schema_version_ = 0;
};

// Applies every migration newer than the database's user_version, each in its own
// transaction. Returns the resulting schema version.
int Migrate(Connection& connection);
int LatestSchemaVersion();

}  // namespace gridd::store

// cuda/src/buffer_notes.hpp -- what the CUDA backend remembers about a device buffer it
// handed out: a QK-norm or a step of the residual path not yet run on it, its values
// already rounded to bf16. Plain C++ (no CUDA), so tests/test_cuda_plan.cpp checks it on
// the CPU.
//
// One note per buffer, found by the buffer's address. The note also holds a weak_ptr to
// the buffer's owner (Activations::device_buffer()): once every Activations of the buffer
// is gone it went back to the pool, the weak_ptr has expired, and the note is dropped, so
// the buffer's next owner (the same address, a new shared_ptr) never sees it. Slices of
// one buffer (aliasing shared_ptrs, linear_many's outputs) share its owner and keep
// their notes, each at its own address, while any slice lives.
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace gemma3 {
namespace cuda {

template <class Note>
class BufferNotes {
 public:
  // Note `note` on the buffer at `data` owned by `owner`, replacing any note it had.
  void put(const std::shared_ptr<void>& owner, const void* data, Note note) {
    drop(data);
    entries_.push_back(Entry{owner, data, std::move(note)});
  }
  // The note on the buffer at `data`, or null.
  Note* find(const void* data) {
    expire();
    for (Entry& e : entries_)
      if (e.data == data) return &e.note;
    return nullptr;
  }
  // The note on the buffer at `data`, removed; nullopt when it has none.
  std::optional<Note> take(const void* data) {
    expire();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->data == data) {
        std::optional<Note> note(std::move(it->note));
        entries_.erase(it);
        return note;
      }
    return std::nullopt;
  }
  // The first note (in the order they were put) for which pred(note) holds, removed;
  // nullopt when none does (a note on another buffer that refers to this one, say).
  template <class Pred>
  std::optional<Note> take_if(Pred pred) {
    expire();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (pred(static_cast<const Note&>(it->note))) {
        std::optional<Note> note(std::move(it->note));
        entries_.erase(it);
        return note;
      }
    return std::nullopt;
  }
  // Forget the note on the buffer at `data` (and every note whose buffer is gone).
  void drop(const void* data) {
    entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                  [&](const Entry& e) { return e.data == data || e.owner.expired(); }),
                   entries_.end());
  }
  // Notes held, those of buffers already gone included until the next call drops them.
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::weak_ptr<void> owner;
    const void* data;
    Note note;
  };
  void expire() {
    entries_.erase(std::remove_if(entries_.begin(), entries_.end(), [](const Entry& e) { return e.owner.expired(); }),
                   entries_.end());
  }
  std::vector<Entry> entries_;
};

}  // namespace cuda
}  // namespace gemma3

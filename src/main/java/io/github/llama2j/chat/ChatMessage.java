package io.github.llama2j.chat;

/** One turn of a conversation: {@code role} is system, user or assistant. */
public record ChatMessage(String role, String content) {
    public ChatMessage {
        if (role == null || role.isEmpty()) {
            throw new IllegalArgumentException("a chat message needs a role");
        }
        if (content == null) {
            throw new IllegalArgumentException("a chat message needs content (may be empty)");
        }
    }
}

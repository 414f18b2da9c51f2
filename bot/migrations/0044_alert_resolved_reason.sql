-- Why an alert closed when no one resolved it by hand and its condition did not clear: 'rule off' when its rule was
-- turned off in Settings or the rules file, its site URL removed, or the store's rhythm took its place. Its message
-- then says it closed unwatched, not "✅ Resolved", which teammates would read as the problem fixed. NULL: resolved
-- by hand (resolved_by) or because the condition cleared. Adding a nullable column rewrites nothing.
ALTER TABLE alerts ADD COLUMN resolved_reason text;

# Raises on its first attempt, succeeds on the second (jobd retries it).
class FlakyJob < ApplicationJob
  class FirstAttempt < StandardError; end

  def perform(token)
    marker = File.join(self.class.out_dir, "#{token}.first")
    unless File.exist?(marker)
      File.write(marker, "")
      raise FirstAttempt, "first attempt of #{token}"
    end
    record(token, "pid" => Process.pid)
  end
end

class AlwaysFailJob < ApplicationJob
  class Boom < StandardError; end
  jobd_options max_attempts: 2

  def perform(token)
    File.write(File.join(self.class.out_dir, "#{token}.#{SecureRandom.hex(4)}.attempt"), "")
    raise Boom, "always fails (#{token})"
  end
end

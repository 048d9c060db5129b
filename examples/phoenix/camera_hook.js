// Minimal browser side for camera_channel.ex: join "view:camera:<id>" and
// show each binary "frame" broadcast (a JPEG ArrayBuffer) in an <img>.
// As a LiveView hook: <img id="cam" phx-hook="CameraView" data-camera="porch">
import { Socket } from "phoenix"

export const CameraView = {
  mounted() {
    this.socket = new Socket("/live_socket", {})
    this.socket.connect()
    this.channel = this.socket.channel(`view:camera:${this.el.dataset.camera}`, {})
    this.channel.on("frame", (jpeg) => {
      const url = URL.createObjectURL(new Blob([jpeg], { type: "image/jpeg" }))
      this.el.onload = () => URL.revokeObjectURL(url)
      this.el.src = url
    })
    this.channel.join()
  },
  destroyed() {
    this.channel && this.channel.leave()
    this.socket && this.socket.disconnect()
  },
}
